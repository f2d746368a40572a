"""Public tests: the lesson's worked example and other small cases you can check by hand.

Run them with `grader test lm-loss lm_loss.py`.
"""

import math

import torch

from grader.testing import assert_close, expect

NO_SHIFT = "no shift? logits[:, t] predict tokens[:, t + 1]: pair logits[:, :-1] with tokens[:, 1:]"
SHIFT_BACKWARDS = (
    "shifted the wrong way? logits[:, t] predict the NEXT token: pair logits[:, :-1] with tokens[:, 1:], "
    "not logits[:, 1:] with tokens[:, :-1]"
)
SUMMED = "summed instead of averaged? The loss is the mean over the counted target tokens"
PADDING_COUNTED = (
    "ignored targets counted? A prediction whose target is ignore_index counts neither in the sum nor "
    "in the number of tokens"
)
INPUT_MASK = (
    "masked by the input position? The mask follows the TARGET: drop position t when "
    "tokens[:, t + 1] == ignore_index"
)
NO_TARGET_NAN = "no target counts: 0 / 0 is NaN. Divide by max(count, 1) so the loss is 0"
PPL_MEAN_OF_EXP = (
    "perplexity as the mean of per-token exp(loss)? It is exp of the MEAN loss: exp(lm_loss(...))"
)
DIVIDED_BY_T = "divided by T instead of the number of targets? T tokens give T - 1 predictions"

ROWS = [[2.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 0.0], [5.0, 5.0, 5.0]]  # the worked example's logits
TOKENS = [1, 2, 1, 0]
PAD_ROW = [0.0, 3.0, 0.0]


def nll(row, target):
    """-log softmax(row)[target] = logsumexp(row) - row[target], by hand."""
    return math.log(sum(math.exp(v) for v in row)) - row[target]


def mean(values):
    return sum(values) / len(values)


LOSSES = [nll(ROWS[t], TOKENS[t + 1]) for t in range(3)]  # [2.4076, 1.0986, 1.4076]
WORKED = mean(LOSSES)  # 1.6379


def test_worked_example(submission):
    """Tokens [1, 2, 1, 0]: positions 0, 1, 2 predict tokens 2, 1, 0; the last position is dropped."""
    got = submission.lm_loss(torch.tensor([ROWS]), torch.tensor([TOKENS]))
    expect(isinstance(got, torch.Tensor), "lm_loss must return a torch.Tensor")
    expect(got.dim() == 0, f"the loss must be a 0-dim tensor (the mean), got shape {tuple(got.shape)}")
    assert_close(
        got,
        torch.tensor(WORKED),
        what="the loss",
        misconceptions={
            NO_SHIFT: torch.tensor(mean([nll(ROWS[t], TOKENS[t]) for t in range(4)])),  # 1.0031
            SHIFT_BACKWARDS: torch.tensor(mean([nll(ROWS[t + 1], TOKENS[t]) for t in range(3)])),  # 1.5349
            SUMMED: torch.tensor(sum(LOSSES)),
            DIVIDED_BY_T: torch.tensor(sum(LOSSES) / 4),
        },
    )


def test_right_padding_is_ignored(submission):
    """Tokens [1, 2, 1, 0, -100, -100]: the predictions of the two padding targets do not count."""
    rows = ROWS[:3] + [PAD_ROW] * 3  # (6, 3): the padded positions' logits are [0, 3, 0]
    tokens = TOKENS + [-100, -100]
    got = submission.lm_loss(torch.tensor([rows]), torch.tensor([tokens]))
    assert_close(
        got,
        torch.tensor(WORKED),
        what="the loss",
        misconceptions={
            # an ignored target read as token 0: counted in the sum and in the mean
            PADDING_COUNTED: torch.tensor(mean(LOSSES + [nll(PAD_ROW, 0)] * 2)),
            INPUT_MASK: torch.tensor(mean(LOSSES + [nll(PAD_ROW, 0)])),
            NO_SHIFT: torch.tensor(mean([nll(rows[t], tokens[t]) for t in range(4)])),
            SHIFT_BACKWARDS: torch.tensor(mean([nll(rows[t + 1], tokens[t]) for t in range(4)])),
        },
    )


def test_batch_is_one_mean(submission):
    """Two sequences of 4 tokens: the loss is the mean over all 6 targets of the batch."""
    logits = torch.tensor([ROWS, [[0.0, 0.0, 0.0]] * 4])  # (2, 4, 3)
    tokens = torch.tensor([TOKENS, [0, 0, 0, 0]])
    log3 = math.log(3)
    assert_close(
        submission.lm_loss(logits, tokens),
        torch.tensor((sum(LOSSES) + 3 * log3) / 6),
        what="the loss of a batch of 2",
        misconceptions={
            SUMMED: torch.tensor(sum(LOSSES) + 3 * log3),
            "summed the per-sequence means? Take one mean over every target token of the batch": torch.tensor(
                WORKED + log3
            ),
            NO_SHIFT: torch.tensor((sum(nll(ROWS[t], TOKENS[t]) for t in range(4)) + 4 * log3) / 8),
            SHIFT_BACKWARDS: torch.tensor(
                (sum(nll(ROWS[t + 1], TOKENS[t]) for t in range(3)) + 3 * log3) / 6
            ),
        },
    )


def test_single_token_sequences(submission):
    """T = 1: there is no target at all, and the loss is 0 (not NaN)."""
    got = submission.lm_loss(torch.zeros(3, 1, 5), torch.tensor([[1], [2], [3]]))
    expect(isinstance(got, torch.Tensor), "lm_loss must return a torch.Tensor")
    expect(not torch.isnan(got), "the loss is NaN for T = 1", hint=NO_TARGET_NAN)
    assert_close(
        got,
        torch.tensor(0.0),
        what="the loss for T = 1",
        misconceptions={NO_SHIFT: torch.tensor(math.log(5))},
    )


def test_all_targets_ignored(submission):
    """Every target is ignore_index (only the first token is real): the loss is 0, not NaN."""
    rows = [[1.0, 0.0, 0.0, 0.0, 0.0]] + [[0.0] * 5] * 3
    tokens = [[3, -100, -100, -100], [1, -100, -100, -100]]
    got = submission.lm_loss(torch.tensor([rows, rows]), torch.tensor(tokens))
    expect(isinstance(got, torch.Tensor), "lm_loss must return a torch.Tensor")
    expect(not torch.isnan(got), "the loss is NaN when every target is ignored", hint=NO_TARGET_NAN)
    assert_close(
        got,
        torch.tensor(0.0),
        what="the loss when every target is ignored",
        misconceptions={
            # an ignored target read as token 0, and counted
            PADDING_COUNTED: torch.tensor(mean([nll(rows[t], 0) for t in range(3)])),
            INPUT_MASK: torch.tensor(nll(rows[0], 0)),
            NO_SHIFT: torch.tensor(mean([nll(rows[0], 3), nll(rows[0], 1)])),
            SHIFT_BACKWARDS: torch.tensor(nll(rows[1], 3)),
        },
    )


def test_perplexity_worked_example(submission):
    """The worked example's perplexity: exp(1.6379) = 5.1446."""
    got = submission.perplexity(torch.tensor([ROWS]), torch.tensor([TOKENS]))
    expect(isinstance(got, torch.Tensor) and got.dim() == 0, "perplexity must return a 0-dim torch.Tensor")
    assert_close(
        got,
        torch.tensor(math.exp(WORKED)),
        what="the perplexity",
        misconceptions={
            PPL_MEAN_OF_EXP: torch.tensor(mean([math.exp(x) for x in LOSSES])),  # 6.0645
            "returned the loss? The perplexity is its exponential": torch.tensor(WORKED),
            NO_SHIFT: torch.tensor(math.exp(mean([nll(ROWS[t], TOKENS[t]) for t in range(4)]))),
            SHIFT_BACKWARDS: torch.tensor(math.exp(mean([nll(ROWS[t + 1], TOKENS[t]) for t in range(3)]))),
        },
    )


def test_float16_logits_give_float32_loss(submission):
    """float16 logits: the loss is computed in float32 and returned as a float32 tensor."""
    got = submission.lm_loss(torch.tensor([ROWS], dtype=torch.float16), torch.tensor([TOKENS]))
    expect(
        isinstance(got, torch.Tensor) and got.dtype == torch.float32,
        f"for float16 logits the loss must be a float32 tensor, got {getattr(got, 'dtype', type(got))}",
        hint="convert half-precision logits to float32 before the log-softmax",
    )
    assert_close(
        got,
        torch.tensor(WORKED),
        what="the loss",
        misconceptions={
            NO_SHIFT: torch.tensor(mean([nll(ROWS[t], TOKENS[t]) for t in range(4)])),
            SHIFT_BACKWARDS: torch.tensor(mean([nll(ROWS[t + 1], TOKENS[t]) for t in range(3)])),
        },
    )


def test_gradient_worked_example(submission):
    """Backward: (softmax - onehot) / 3 at positions 0, 1, 2, and zeros at the last position."""
    logits = torch.tensor([ROWS], requires_grad=True)
    found = submission.lm_loss.backward(logits, torch.tensor([TOKENS]), grad_output=torch.tensor(1.0))
    assert_close(
        found.output,
        torch.tensor(WORKED),
        what="the loss",
        misconceptions={
            NO_SHIFT: torch.tensor(mean([nll(ROWS[t], TOKENS[t]) for t in range(4)])),
            SHIFT_BACKWARDS: torch.tensor(mean([nll(ROWS[t + 1], TOKENS[t]) for t in range(3)])),
        },
    )
    x = torch.tensor(ROWS[:3])
    onehot = torch.nn.functional.one_hot(torch.tensor(TOKENS[1:]), 3).float()  # the targets 2, 1, 0
    want = torch.cat([(torch.softmax(x, dim=-1) - onehot) / 3, torch.zeros(1, 3)]).unsqueeze(0)
    assert_close(
        found.inputs[0],
        want,
        what="the gradient of the logits",
        hint="build the loss from differentiable tensor operations (no .item(), no .detach())",
    )
