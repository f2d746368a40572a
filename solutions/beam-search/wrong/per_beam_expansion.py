# expect: failed
# why: expands each beam on its own (its best continuation) instead of ranking all beam x token candidates
# caught-by: test_random_tables
import torch


def beam_search(
    logprobs: torch.Tensor,
    prompt_last_token: int,
    num_beams: int,
    max_new_tokens: int,
    eos_id: int,
    length_penalty: float = 1.0,
    early_stopping: bool = True,
) -> list[tuple[list[int], float]]:
    table = logprobs.detach().to(torch.float64).tolist()
    vocab = len(table)
    live = [([], 0.0, int(prompt_last_token))]
    finished: list[tuple[float, list[int]]] = []

    def add(tokens: list[int], total: float) -> None:
        score = total / (len(tokens) ** length_penalty)
        if len(finished) < num_beams or score > min(s for s, _ in finished):
            finished.append((score, tokens))
            if len(finished) > num_beams:
                worst = min(range(len(finished)), key=lambda i: finished[i][0])
                del finished[worst]

    done = False
    for _ in range(max_new_tokens):
        # the mistake: every beam picks its own best tokens (one each, once the beam is full), and
        # the beams never compete with each other
        per = num_beams if len(live) == 1 else 1
        candidates = []
        for b, (_, total, last) in enumerate(live):
            row = sorted(range(vocab), key=lambda v: -table[last][v])[: per + 1]
            candidates += [(total + table[last][v], b, v) for v in row]
        new_live = []
        for total, b, v in candidates:  # beam by beam, never ranked against each other
            if v == eos_id:
                add(live[b][0] + [v], total)
            else:
                new_live.append((live[b][0] + [v], total, v))
                if len(new_live) == num_beams:
                    break
        live = new_live
        if early_stopping and len(finished) >= num_beams:
            done = True
            break
    if not done:
        for tokens, total, _ in live:
            add(tokens, total)
    ranked = sorted(finished, key=lambda h: -h[0])
    return [(tokens, float(score)) for score, tokens in ranked]
