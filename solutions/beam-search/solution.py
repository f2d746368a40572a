"""Reference solution of Beam search: beam search over a bigram table of log-probabilities, with
finished hypotheses set aside on EOS, length-normalised scores and deterministic tie-breaks."""

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
    table = logprobs.detach().to(torch.float64).tolist()  # a copy: the input stays as it was
    vocab = len(table)
    live = [([], 0.0, int(prompt_last_token))]  # (new tokens, sum of log-probs, last token)
    finished: list[tuple[float, list[int]]] = []  # (normalised score, tokens), in insertion order

    def add(tokens: list[int], total: float) -> None:
        score = total / (len(tokens) ** length_penalty)
        if len(finished) < num_beams or score > min(s for s, _ in finished):
            finished.append((score, tokens))
            if len(finished) > num_beams:
                worst = min(range(len(finished)), key=lambda i: finished[i][0])  # earliest of ties
                del finished[worst]

    done = False
    for _ in range(max_new_tokens):
        candidates = [
            (total + table[last][v], b, v) for b, (_, total, last) in enumerate(live) for v in range(vocab)
        ]
        candidates.sort(key=lambda c: -c[0])  # stable: ties stay in (beam, token) order
        new_live = []
        for rank, (total, b, v) in enumerate(candidates):
            if v == eos_id:
                if rank < num_beams:
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
    ranked = sorted(finished, key=lambda h: -h[0])  # stable: ties stay in insertion order
    return [(tokens, float(score)) for score, tokens in ranked]
