# expect: failed
# why: the builders shift the labels (labels[t] = the token at t + 1) and the loss shifts again:
#   each position is trained to predict the token two steps ahead
# caught-by: test_pad_batch_random, test_pack_batch_random, test_packed_loss_equals_padded_loss


import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
HALF = (torch.float16, torch.bfloat16)


def _checked(examples) -> list[tuple[list[int], list[int]]]:
    """The examples as (prompt, response) lists of ints; ValueError on an empty batch or response."""
    pairs = [(list(map(int, prompt)), list(map(int, response))) for prompt, response in examples]
    if not pairs:
        raise ValueError("no examples")
    if any(len(response) == 0 for _, response in pairs):
        raise ValueError("every example needs a response of at least one token")
    return pairs


def _labels(prompt: list[int], response: list[int]) -> list[int]:
    """One example's labels: -100 on the prompt, the response's own ids on the response."""
    return [IGNORE_INDEX] * len(prompt) + response


def pad_batch(examples, pad_id: int) -> dict[str, torch.Tensor]:
    """One row per example, right-padded with pad_id to the longest example."""
    pairs = _checked(examples)
    width = max(len(p) + len(r) for p, r in pairs)
    input_ids = torch.full((len(pairs), width), pad_id, dtype=torch.int64)
    labels = torch.full((len(pairs), width), IGNORE_INDEX, dtype=torch.int64)
    attention_mask = torch.zeros((len(pairs), width), dtype=torch.int64)
    for row, (prompt, response) in enumerate(pairs):
        n = len(prompt) + len(response)
        input_ids[row, :n] = torch.tensor(prompt + response, dtype=torch.int64)
        labels[row, :n] = torch.tensor(_labels(prompt, response), dtype=torch.int64)
        attention_mask[row, :n] = 1
    shifted = torch.full_like(labels, IGNORE_INDEX)
    shifted[:, :-1] = labels[:, 1:]  # labels[t]: the target of position t
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": shifted}


def pack_batch(examples, row_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Examples in order, next-fit into rows of row_len tokens, each row right-padded to row_len."""
    pairs = _checked(examples)
    rows: list[list[tuple[list[int], list[int]]]] = [[]]
    used = 0  # tokens already in the last row
    for prompt, response in pairs:
        n = len(prompt) + len(response)
        if n > row_len:
            raise ValueError(f"an example of {n} tokens does not fit in a row of {row_len}")
        if used + n > row_len:  # it does not fit in what is left: close the row, start a new one
            rows.append([])
            used = 0
        rows[-1].append((prompt, response))
        used += n

    shape = (len(rows), row_len)
    input_ids = torch.full(shape, pad_id, dtype=torch.int64)
    labels = torch.full(shape, IGNORE_INDEX, dtype=torch.int64)
    position_ids = torch.zeros(shape, dtype=torch.int64)
    # segment[r, t]: which example of row r holds position t; padding gets -1
    segment = torch.full(shape, -1, dtype=torch.int64)
    for r, row in enumerate(rows):
        start = 0
        for s, (prompt, response) in enumerate(row):
            n = len(prompt) + len(response)
            stop = start + n
            input_ids[r, start:stop] = torch.tensor(prompt + response, dtype=torch.int64)
            example_labels = _labels(prompt, response)
            example_labels[0] = IGNORE_INDEX  # no token of the row may predict an example's first token
            labels[r, start:stop] = torch.tensor(example_labels, dtype=torch.int64)
            position_ids[r, start:stop] = torch.arange(n)  # every example starts again at position 0
            segment[r, start:stop] = s
            start = stop

    same_example = (segment.unsqueeze(2) == segment.unsqueeze(1)) & (segment.unsqueeze(2) >= 0)
    causal = torch.ones(row_len, row_len, dtype=torch.bool).tril()
    eye = torch.eye(row_len, dtype=torch.bool)
    # block-diagonal causal for the examples; a padding position attends to itself only
    attention_mask = (same_example & causal) | eye
    shifted = torch.full_like(labels, IGNORE_INDEX)
    shifted[:, :-1] = labels[:, 1:]  # labels[t]: the target of position t
    return {
        "input_ids": input_ids,
        "labels": shifted,
        "position_ids": position_ids,
        "attention_mask": attention_mask,
    }


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean next-token cross-entropy over every target that is not -100, in the whole batch."""
    if logits.dtype in HALF:
        logits = logits.float()
    shift_logits = logits[:, :-1, :]  # position t predicts the label at t + 1
    shift_labels = labels[:, 1:]
    counted = shift_labels != IGNORE_INDEX
    if not bool(counted.any()):
        return logits.sum() * 0.0  # nothing to learn: 0, with a zero gradient (not NaN)
    return F.cross_entropy(
        shift_logits.reshape(-1, shift_logits.shape[-1]),
        shift_labels.reshape(-1),
        ignore_index=IGNORE_INDEX,
    )
