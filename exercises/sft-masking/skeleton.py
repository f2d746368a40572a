"""SFT batches: masking and packing. Save this file as sft_batch.py and fill in the three functions.
Read README.md first: it explains every convention used here.

An example is a pair (prompt, response): two sequences of token ids (Python ints). The prompt may
be empty; the response has at least one token.
"""

import torch
import torch.nn.functional as F  # noqa: F401  (F.cross_entropy is allowed in sft_loss)

IGNORE_INDEX = -100  # the label of a token that is not a target (F.cross_entropy's default ignore_index)


def pad_batch(examples, pad_id: int) -> dict[str, torch.Tensor]:
    """One row per example, right-padded to the longest example (Hugging Face's conventions).

    examples: a non-empty sequence of (prompt, response) pairs of token-id sequences.
    Each row holds prompt + response, then pad_id up to L = the longest len(prompt) + len(response).

    Returns a dict of three int64 tensors of shape (B, L), B = len(examples):
        "input_ids":      the tokens, padding = pad_id.
        "attention_mask": 1 on the example's tokens, 0 on padding.
        "labels":         aligned with input_ids (NOT shifted): -100 on the prompt's tokens and
                          on padding, the token's own id on the response's tokens.

    attention_mask and labels follow the examples' lengths, never a comparison with pad_id: a token
    of an example equal to pad_id (an end-of-text token used as padding) is an ordinary token.

    Raises ValueError when examples is empty or a response is empty.
    Leaves examples as they were.

    Example: pad_batch([([5, 6], [7, 8, 9]), ([1], [2])], pad_id=0)
        input_ids      [[5, 6, 7, 8, 9], [1, 2, 0, 0, 0]]
        attention_mask [[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]]
        labels         [[-100, -100, 7, 8, 9], [-100, 2, -100, -100, -100]]
    """
    raise NotImplementedError("pad_batch: right padding, labels -100 on prompt and padding")


def pack_batch(examples, row_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Several examples per row, as transformers.DataCollatorWithFlattening lays them out.

    Packing policy (next-fit, in the given order): the examples are placed one after the other
    into the current row; when the next example does not fit in what is left of the current
    row, that row is closed and the example starts a new one (an earlier row is never revisited,
    examples are never reordered or split). Every row is right-padded with pad_id to row_len.
    An example longer than row_len raises ValueError, as do an empty examples and an empty
    response.

    Returns a dict, R = the number of rows:
        "input_ids":      int64 (R, row_len); padding = pad_id.
        "labels":         int64 (R, row_len), aligned with input_ids: each example's labels as
                          pad_batch gives them (-100 on the prompt, ids on the response), except
                          that the FIRST label of every packed example is -100; padding -100.
        "position_ids":   int64 (R, row_len): 0, 1, 2, ... restarting at 0 at the first token
                          of every example; 0 on padding.
        "attention_mask": bool (R, row_len, row_len), True = query i may attend key j (the
                          convention of F.scaled_dot_product_attention's bool attn_mask):
                          True iff i and j belong to the same example and j <= i
                          (block-diagonal causal); a padding position attends to itself only
                          (True at [i, i]) and no other position attends to it.

    Leaves examples as they were.
    """
    raise NotImplementedError("pack_batch: next-fit rows, restarting positions, block-diagonal mask")


def sft_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean next-token cross-entropy over the batch's targets that are not -100.

    logits: (B, T, V) floating point; labels: (B, T) int64, aligned with the input (as pad_batch
    and pack_batch return them). The shift happens here: logits[:, t] predict labels[:, t + 1].

    Returns a 0-dim tensor: the mean over every (b, t), t < T - 1, with labels[b, t + 1] != -100 of
    -log softmax(logits[b, t])[labels[b, t + 1]]: one mean over all the counted targets of the
    batch, not a mean of per-row means. It equals
        F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
    when some target counts; with no counted target it is 0, not NaN, as a tensor still connected
    to logits (logits.sum() * 0.0) so that backward() gives a zero gradient.
    float16 / bfloat16 logits are computed in float32 and give a float32 loss (the 0 of no counted
    target too: convert the logits first); float32 and float64 logits are computed in their own
    dtype (float64 to float64's precision) and give a loss of that dtype. Differentiable with
    respect to logits.
    Leaves logits and labels as they were.
    """
    raise NotImplementedError("sft_loss: shift, then one mean over the counted targets")
