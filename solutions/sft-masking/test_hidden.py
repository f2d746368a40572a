"""Hidden tests for sft-masking: padded and packed batches of random examples against a trusted
builder written here, attention over packed rows against attention over each example alone (with
torch's F.scaled_dot_product_attention), the loss against F.cross_entropy on the shifted pair,
its gradient, and inputs left unchanged."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_close, assert_gradients_close, call_unchanged, compare, expect, shrink

X = -100
PROMPT_LABELED = "the labels match the prompt left unmasked: every prompt token's label is -100"
PRESHIFTED = (
    "the labels match labels shifted by one position: keep them aligned with input_ids (the loss shifts)"
)
LEFT_PADDED = "the output matches left padding: the padding goes after the example's tokens (right padding)"
PAD_ATTENDED = "the attention mask matches 1 on the padding too: padding positions get 0"
PAD_BY_ID = (
    "the output matches padding found by comparing tokens with pad_id: a token of an example equal to "
    "pad_id (an end-of-text token) is an ordinary token; the padding is what follows the example"
)
FIRST_LABEL_KEPT = (
    "the labels match packed examples whose first label is kept: the first label of every packed "
    "example is -100, or the previous example's last token is trained to predict it"
)
POSITIONS_RUN_ON = (
    "the position ids match one count along the whole row: they restart at 0 at every example's first token"
)
PLAIN_CAUSAL = (
    "the mask matches a plain causal mask over the whole row: a query attends only keys of its own example "
    "(block-diagonal causal)"
)
PAD_ROWS_EMPTY = (
    "the mask matches padding rows with no allowed key, which a plain softmax turns into NaN: a padding "
    "position attends to itself"
)
PAD_BLOCK = (
    "the mask matches the padding treated as one more example: a padding position attends to itself only"
)
PAD_SEES_ALL = (
    "the mask matches padding positions that attend the tokens before them: a padding position attends "
    "to itself only"
)
FIRST_FIT = (
    "the rows match examples sent back to fill an earlier row's gap: next-fit closes a row for good when "
    "the next example does not fit"
)
NO_SHIFT = "the loss matches logits[:, t] paired with labels[:, t]: pair logits[:, :-1] with labels[:, 1:]"
DOUBLE_SHIFT = "the loss matches logits[:, t] paired with labels[:, t + 2]: shift once, inside the loss"
WRONG_WAY = "the loss matches logits[:, 1:] paired with labels[:, :-1]: logits[:, t] predict labels[:, t + 1]"
ROW_MEANS = (
    "the loss matches a mean of per-row means: take one mean over every counted target of the whole batch"
)
NAN_NO_TARGET = "the loss is NaN (the 0 / 0 of a mean over no target): with no counted target the loss is 0"


# ---------------------------------------------------------------------------- trusted builders
# An independent implementation of the lesson's conventions, with switches that reproduce the
# mistakes, so that a submission's output can be matched to the mistake it made.


def example_labels(prompt, response, *, prompt_labeled=False):
    return (list(prompt) if prompt_labeled else [X] * len(prompt)) + list(response)


def preshift(labels):
    """Labels shifted left by one position, as a builder that shifts for the loss would write them."""
    out = torch.full_like(labels, X)
    out[:, :-1] = labels[:, 1:]
    return out


def build_pad(examples, pad_id, *, prompt_labeled=False, left=False, ones=False, by_id=False, shifted=False):
    width = max(len(p) + len(r) for p, r in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.int64)
    labels = torch.full((len(examples), width), X, dtype=torch.int64)
    mask = torch.zeros((len(examples), width), dtype=torch.int64)
    for b, (p, r) in enumerate(examples):
        n = len(p) + len(r)
        where = slice(width - n, width) if left else slice(0, n)
        ids[b, where] = torch.tensor(list(p) + list(r), dtype=torch.int64)
        labels[b, where] = torch.tensor(
            example_labels(p, r, prompt_labeled=prompt_labeled), dtype=torch.int64
        )
        mask[b, where] = 1
    if ones:
        mask = torch.ones_like(mask)
    if by_id:
        mask = (ids != pad_id).long()
        labels = labels.masked_fill(ids == pad_id, X)
    if shifted:
        labels = preshift(labels)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def next_fit(lengths, row_len):
    rows, used = [[]], 0
    for i, n in enumerate(lengths):
        if used + n > row_len:
            rows.append([])
            used = 0
        rows[-1].append(i)
        used += n
    return rows


def first_fit(lengths, row_len):
    rows, used = [], []
    for i, n in enumerate(lengths):
        for r in range(len(rows)):
            if used[r] + n <= row_len:
                rows[r].append(i)
                used[r] += n
                break
        else:
            rows.append([i])
            used.append(n)
    return rows


def layout(examples, row_len, *, policy=next_fit):
    """(row, start, example index) of every example."""
    placed = []
    for r, row in enumerate(policy([len(p) + len(q) for p, q in examples], row_len)):
        start = 0
        for i in row:
            placed.append((r, start, i))
            start += len(examples[i][0]) + len(examples[i][1])
    return placed


def build_pack(
    examples,
    row_len,
    pad_id,
    *,
    policy=next_fit,
    prompt_labeled=False,
    first_kept=False,
    run_on=False,
    plain=False,
    pads="self",
    by_id=False,
    shifted=False,
):
    placed = layout(examples, row_len, policy=policy)
    n_rows = 1 + max(r for r, _, _ in placed)
    shape = (n_rows, row_len)
    ids = torch.full(shape, pad_id, dtype=torch.int64)
    labels = torch.full(shape, X, dtype=torch.int64)
    pos = torch.zeros(shape, dtype=torch.int64)
    seg = torch.full(shape, -1, dtype=torch.int64)
    for r, start, i in placed:
        p, q = examples[i]
        n = len(p) + len(q)
        lab = example_labels(p, q, prompt_labeled=prompt_labeled)
        if not first_kept:
            lab[0] = X
        ids[r, start : start + n] = torch.tensor(list(p) + list(q), dtype=torch.int64)
        labels[r, start : start + n] = torch.tensor(lab, dtype=torch.int64)
        pos[r, start : start + n] = torch.arange(n)
        seg[r, start : start + n] = i
    real = seg >= 0
    if by_id:
        real = ids != pad_id
        labels = labels.masked_fill(~real, X)
    if run_on:
        pos = torch.arange(row_len).expand(shape).clone()
    tril = torch.ones(row_len, row_len, dtype=torch.bool).tril()
    same = seg.unsqueeze(2) == seg.unsqueeze(1)
    real_q, pad_q = real.unsqueeze(2), ~real.unsqueeze(2)
    if plain:  # real queries attend every real key before them, in any example
        mask = tril & real_q & real.unsqueeze(1)
    else:
        mask = same & tril & real_q
    eye = torch.eye(row_len, dtype=torch.bool)
    if pads == "self":
        mask = mask | (eye & pad_q)
    elif pads == "block":  # the padding as one more causal example
        mask = mask | (same & tril & pad_q)
    elif pads == "tail":  # padding queries attend everything before them
        mask = mask | (tril & pad_q)
    if shifted:
        labels = preshift(labels)
    return {"input_ids": ids, "labels": labels, "position_ids": pos, "attention_mask": mask}


PACK_VARIANTS = [  # (the mistake's words, the switches of build_pack that make it)
    (PROMPT_LABELED, {"prompt_labeled": True}),
    (FIRST_LABEL_KEPT, {"first_kept": True}),
    (POSITIONS_RUN_ON, {"run_on": True}),
    (PLAIN_CAUSAL, {"plain": True}),
    (PAD_ROWS_EMPTY, {"pads": "none"}),
    (PAD_BLOCK, {"pads": "block"}),
    (PAD_SEES_ALL, {"pads": "tail"}),
    (FIRST_FIT, {"policy": first_fit}),
    (PRESHIFTED, {"shifted": True}),
    (PAD_BY_ID, {"by_id": True}),
    # a plain causal mask with the other treatments of the padding: after the single mistakes, so
    # that an output both explain is named after the simpler one
    (PLAIN_CAUSAL, {"plain": True, "pads": "tail"}),
    (PLAIN_CAUSAL, {"plain": True, "pads": "none"}),
    (PLAIN_CAUSAL, {"plain": True, "pads": "block"}),
]


def pack_mistakes(examples, row_len, pad_id, key):
    """(words, output) of each mistake that changes the output `key` of pack_batch; a mistake may
    have several outputs (a plain causal mask with each treatment of the padding)."""
    right = build_pack(examples, row_len, pad_id)[key]
    found = []
    for words, kw in PACK_VARIANTS:
        got = build_pack(examples, row_len, pad_id, **kw)[key]
        if got.shape != right.shape or not torch.equal(got, right):
            found.append((words, got))
    return found


def assert_matches(actual, expected, *, what, mistakes, **tol):
    """assert_close with mistakes given as (words, output) pairs, where one mistake's words may come
    with several outputs: the first that the submission's output matches becomes the hint."""
    if compare(actual, expected, **tol) is None:
        return
    hint = ""
    for words, wrong in mistakes:
        try:
            if compare(actual, wrong, **tol) is None:
                hint = words
                break
        except TypeError:
            continue
    assert_close(actual, expected, what=what, hint=hint, **tol)


def pad_mistakes(examples, pad_id, key):
    variants = {
        PROMPT_LABELED: {"prompt_labeled": True},
        LEFT_PADDED: {"left": True},
        PAD_ATTENDED: {"ones": True},
        PRESHIFTED: {"shifted": True},
        PAD_BY_ID: {"by_id": True},  # last: in the smallest cases its labels can equal another mistake's
    }
    right = build_pad(examples, pad_id)[key]
    found = {}
    for words, kw in variants.items():
        got = build_pad(examples, pad_id, **kw)[key]
        if not torch.equal(got, right):
            found[words] = got
    return found


def check_batch(out, keys, name):
    expect(isinstance(out, dict), f"{name} must return a dict")
    expect(all(k in out for k in keys), f"{name} must return the keys {', '.join(keys)}")
    for k in keys:
        expect(isinstance(out[k], torch.Tensor), f"every value {name} returns must be a torch.Tensor")


def check_pad(submission, examples, pad_id):
    out = submission.pad_batch(examples, pad_id)
    keys = ("input_ids", "attention_mask", "labels")
    check_batch(out, keys, "pad_batch")
    right = build_pad(examples, pad_id)
    for k in keys:
        assert_close(
            out[k], right[k], what=f"pad_batch's {k}", misconceptions=pad_mistakes(examples, pad_id, k)
        )


def check_pack(submission, examples, row_len, pad_id):
    out = submission.pack_batch(examples, row_len, pad_id)
    keys = ("input_ids", "labels", "position_ids", "attention_mask")
    check_batch(out, keys, "pack_batch")
    right = build_pack(examples, row_len, pad_id)
    for k in keys:
        assert_matches(
            out[k], right[k], what=f"pack_batch's {k}", mistakes=pack_mistakes(examples, row_len, pad_id, k)
        )
    return out


# ---------------------------------------------------------------------------- random examples


def random_examples(gen, n, max_prompt, max_response, vocab, pad_id=None):
    """n examples; about a third with an empty prompt, some with single-token responses, and
    (when pad_id is given) responses that end with pad_id, as an end-of-text token would."""
    examples = []
    for _ in range(n):
        n_prompt = 0 if gen.random() < 0.35 else int(gen.integers(1, max_prompt + 1))
        n_response = int(gen.integers(1, max_response + 1))
        prompt = [int(t) for t in gen.integers(1, vocab, n_prompt)]
        response = [int(t) for t in gen.integers(1, vocab, n_response)]
        if pad_id is not None and gen.random() < 0.5:
            response[-1] = pad_id
        examples.append((prompt, response))
    return examples


def test_pad_batch_random(submission, seed):
    """pad_batch on random batches: empty prompts, single-token responses, tokens equal to pad_id."""

    def check(sizes, seed):
        gen = np.random.default_rng(seed)
        pad_id = int(gen.integers(0, 3))
        examples = random_examples(gen, sizes["examples"], sizes["prompt"], sizes["response"], 30, pad_id)
        check_pad(submission, examples, pad_id)

    shrink(check, {"examples": 6, "prompt": 6, "response": 6}, seed=seed, budget=30)


def test_pack_batch_random(submission, seed):
    """pack_batch on random batches: next-fit rows, labels, restarting positions, block-diagonal masks."""

    def check(sizes, seed):
        gen = np.random.default_rng(seed)
        pad_id = int(gen.integers(0, 3))
        examples = random_examples(gen, sizes["examples"], sizes["prompt"], sizes["response"], 30, pad_id)
        longest = max(len(p) + len(r) for p, r in examples)
        row_len = longest + int(gen.integers(0, 6))
        check_pack(submission, examples, row_len, pad_id)

    shrink(check, {"examples": 9, "prompt": 5, "response": 5}, seed=seed, budget=30)


# ---------------------------------------------------------------------------- packing cases

PACK_CASES = [
    # (lengths as (prompt, response), row_len): each stated in the lesson
    pytest.param([(1, 2), (2, 1), (0, 3)], 3, id="every-example-fills-a-row"),
    pytest.param([(2, 1), (1, 1), (0, 3)], 5, id="exact-fill-then-new-row"),
    pytest.param([(1, 2), (2, 1), (1, 1), (0, 2)], 5, id="next-fit-never-goes-back"),
    pytest.param([(3, 1), (0, 1), (0, 1), (0, 1)], 8, id="single-token-responses"),
    pytest.param([(0, 2), (0, 3), (0, 1)], 6, id="empty-prompts-one-row"),
    pytest.param([(4, 2)], 9, id="one-example-mostly-padding"),
]


def examples_of(lengths, start=1):
    out, t = [], start
    for n_prompt, n_response in lengths:
        out.append((list(range(t, t + n_prompt)), list(range(t + n_prompt, t + n_prompt + n_response))))
        t += n_prompt + n_response
    return out


@pytest.mark.parametrize("lengths, row_len", PACK_CASES)
def test_packing_cases(submission, lengths, row_len):
    """The packing policy on chosen lengths: exact fills, next-fit, single-token responses, padding."""
    check_pack(submission, examples_of(lengths), row_len, 0)


def test_pad_batch_cases(submission):
    """pad_batch with an empty prompt, a single-token response, and a response ending with pad_id."""
    examples = [([4, 5, 6], [7]), ([], [8, 9, 0]), ([3], [2, 0]), ([], [6])]
    check_pad(submission, examples, 0)


# ---------------------------------------------------------------------------- attention over packed rows

D, HEADS, POSITIONS = 16, 2, 32


def tiny_model(gen, vocab):
    """Token and learned position embeddings, one attention layer, an output projection (float64)."""

    def randn(*shape, scale=1.0):
        return torch.from_numpy(gen.standard_normal(shape) * scale)

    return {
        "tok": randn(vocab, D),
        "pos": randn(POSITIONS, D),
        "wq": randn(D, D, scale=D**-0.5),
        "wk": randn(D, D, scale=D**-0.5),
        "wv": randn(D, D, scale=D**-0.5),
        "out": randn(D, vocab, scale=D**-0.5),
    }


def attend(model, ids, pos, mask):
    """Attention outputs (R, L, D) for ids and positions (R, L) and a bool mask (R, L, L)."""
    x = model["tok"][ids] + model["pos"][pos]
    n_rows, length = ids.shape

    def heads(w):
        return (x @ w).view(n_rows, length, HEADS, D // HEADS).transpose(1, 2)

    y = F.scaled_dot_product_attention(
        heads(model["wq"]), heads(model["wk"]), heads(model["wv"]), attn_mask=mask[:, None]
    )
    return y.transpose(1, 2).reshape(n_rows, length, D)


def alone(model, prompt, response):
    """The attention outputs and logits of one example run by itself, positions 0 .. n - 1."""
    ids = torch.tensor([list(prompt) + list(response)], dtype=torch.int64)
    n = ids.shape[1]
    causal = torch.ones(1, n, n, dtype=torch.bool).tril()
    y = attend(model, ids, torch.arange(n)[None], causal)[0]
    return y, y @ model["out"]


def same_rows(out, examples, row_len, pad_id):
    """Fail early, in fixed words, when pack_batch's input_ids are not next-fit's rows, before its
    outputs meet tensors shaped by next-fit's rows (attention over them, logits computed on them):
    a different packing would otherwise surface as a wrong mask shape or an error in sft_loss.
    Returns the expected packed batch."""
    right = build_pack(examples, row_len, pad_id)
    ids, expected = out["input_ids"], right["input_ids"]
    if ids.shape == expected.shape and torch.equal(ids.to(torch.int64), expected):
        return right
    first = build_pack(examples, row_len, pad_id, policy=first_fit)["input_ids"]
    hint = FIRST_FIT if ids.shape == first.shape and torch.equal(ids.to(torch.int64), first) else ""
    detail = f"input_ids of shape {tuple(ids.shape)} returned, {tuple(expected.shape)} expected"
    expect(
        ids.dim() == 2 and ids.shape[0] == expected.shape[0],
        "pack_batch returned another number of rows than next-fit packing gives: check its rows first "
        "(test_packing_cases)",
        detail=detail,
        hint=hint,
    )
    expect(
        False,
        "pack_batch's input_ids differ from next-fit packing's: check them first (test_packing_cases)",
        detail=detail,
        hint=hint,
    )


def valid_pack(out, right):
    """Fail early, in fixed words, when the packed batch cannot be run through attention."""
    mask, pos = out["attention_mask"], out["position_ids"]
    expect(mask.dtype == torch.bool, "pack_batch's attention_mask must be a bool tensor (True = may attend)")
    expect(
        tuple(mask.shape) == tuple(right["attention_mask"].shape)
        and tuple(pos.shape) == tuple(right["position_ids"].shape),
        "pack_batch's attention_mask must be (rows, row_len, row_len) and position_ids (rows, row_len)",
    )
    expect(pos.dtype == torch.int64, "pack_batch's position_ids must be an int64 tensor")
    expect(bool(((pos >= 0) & (pos < POSITIONS)).all()), "position ids must lie in 0 .. row_len - 1")


def packed_outputs_by_mistake(model, examples, row_len):
    """The attention outputs of packed rows built with each mistake that changes them."""
    found = []
    for words, kw in [
        (PLAIN_CAUSAL, {"plain": True}),
        (POSITIONS_RUN_ON, {"run_on": True}),
        (PAD_BY_ID, {"by_id": True}),
    ]:
        b = build_pack(examples, row_len, 0, **kw)
        found.append((words, attend(model, b["input_ids"], b["position_ids"], b["attention_mask"])))
    return found


@pytest.mark.parametrize(
    "n, row_len",
    [pytest.param(6, 12, id="six-examples-rows-of-12"), pytest.param(10, 20, id="ten-examples-rows-of-20")],
)
def test_packed_attention_equals_separate(submission, seed, n, row_len):
    """Attention over packed rows (your mask and position ids) equals attention over each example alone."""
    gen = np.random.default_rng(seed + 11 * n)
    model = tiny_model(gen, 30)
    examples = random_examples(gen, n, 4, 5, 30, pad_id=0)
    out = submission.pack_batch(examples, row_len, 0)
    check_batch(out, ("input_ids", "labels", "position_ids", "attention_mask"), "pack_batch")
    right = same_rows(out, examples, row_len, 0)  # the rows first: the checks below assume them
    valid_pack(out, right)
    expect(
        bool(out["attention_mask"].any(dim=-1).all()),
        "some query of the packed mask has no allowed key: every query needs one (a padding position "
        "attends to itself)",
    )
    y = attend(model, right["input_ids"], out["position_ids"], out["attention_mask"])
    expect(bool(torch.isfinite(y).all()), "attention over a packed row with your mask gives NaN or inf")
    expected = torch.zeros_like(y)
    real = torch.zeros(y.shape[:2], dtype=torch.bool)
    for r, start, i in layout(examples, row_len):
        n_i = len(examples[i][0]) + len(examples[i][1])
        expected[r, start : start + n_i] = alone(model, *examples[i])[0]
        real[r, start : start + n_i] = True
    assert_matches(
        y[real],
        expected[real],
        what="the attention outputs at the examples' tokens (packed, against each example alone)",
        rtol=1e-9,
        atol=1e-9,
        mistakes=[(k, v[real]) for k, v in packed_outputs_by_mistake(model, examples, row_len)],
    )


def oracle_loss(model, examples):
    """F.cross_entropy over every example run alone: its logits[:-1] against its labels[1:]."""
    logits, targets = [], []
    for p, r in examples:
        lg = alone(model, p, r)[1]
        logits.append(lg[:-1])
        targets.append(torch.tensor(example_labels(p, r)[1:], dtype=torch.int64))
    logits, targets = torch.cat(logits), torch.cat(targets)
    if not bool((targets != X).any()):
        return torch.zeros((), dtype=torch.float64)
    return F.cross_entropy(logits, targets, ignore_index=X)


def token_loss(logits, labels, *, row_means=False, shift=1):
    """The loss with a mistake: a mean of per-row means, or another shift."""
    if shift >= 0:
        lg, lb = logits[:, : logits.shape[1] - shift], labels[:, shift:]
    else:
        lg, lb = logits[:, -shift:], labels[:, :shift]
    each = F.cross_entropy(lg.transpose(1, 2), lb, ignore_index=X, reduction="none")  # (B, T - shift)
    counted = (lb != X).to(each.dtype)
    if row_means:
        per_row = (each * counted).sum(1) / counted.sum(1).clamp(min=1)
        return per_row[counted.sum(1) > 0].mean()
    return (each * counted).sum() / counted.sum().clamp(min=1)


def loss_mistakes(logits, labels):
    return {
        ROW_MEANS: token_loss(logits, labels, row_means=True),
        NO_SHIFT: token_loss(logits, labels, shift=0),
        DOUBLE_SHIFT: token_loss(logits, labels, shift=2),
        WRONG_WAY: token_loss(logits, labels, shift=-1),
    }


def test_packed_loss_equals_padded_loss(submission, seed):
    """sft_loss on your packed and padded labels equals the loss of each example run alone, for one model.

    The logits are computed from the correct rows, so that this test isolates the labels and the
    loss; the attention test checks the mask and the position ids."""
    gen = np.random.default_rng(seed + 5)
    model = tiny_model(gen, 30)
    # rows of 26: [(4, 3), (0, 2)], [(0, 24)], [(2, 1), (0, 3), (1, 1), (0, 1)]: empty prompts after
    # another example, a long response next to short ones, a single-token response, padding
    lengths = [(4, 3), (0, 2), (0, 24), (2, 1), (0, 3), (1, 1), (0, 1)]
    examples = [
        ([int(t) for t in gen.integers(1, 30, a)], [int(t) for t in gen.integers(1, 30, b)])
        for a, b in lengths
    ]
    examples[4][1][-1] = 0  # an end-of-text token equal to pad_id
    row_len = 26
    expected = oracle_loss(model, examples)

    # the logits come from the correct rows (the attention test checks your mask and positions):
    # this test checks your labels and your loss
    packed = submission.pack_batch(examples, row_len, 0)
    check_batch(packed, ("input_ids", "labels", "position_ids", "attention_mask"), "pack_batch")
    # the logits are shaped by next-fit's rows: other rows would meet them as misaligned labels
    right = same_rows(packed, examples, row_len, 0)
    expect(
        packed["labels"].shape == right["labels"].shape,
        "pack_batch's labels must have the shape of its input_ids, (rows, row_len)",
        detail=f"labels of shape {tuple(packed['labels'].shape)}, expected {tuple(right['labels'].shape)}",
    )
    logits = attend(model, right["input_ids"], right["position_ids"], right["attention_mask"]) @ model["out"]
    mistakes = loss_mistakes(logits, right["labels"])
    for words, kw in [
        (FIRST_LABEL_KEPT, {"first_kept": True}),
        (PROMPT_LABELED, {"prompt_labeled": True}),
        (PAD_BY_ID, {"by_id": True}),
        (PRESHIFTED, {"shifted": True}),
    ]:
        mistakes[words] = token_loss(logits, build_pack(examples, row_len, 0, **kw)["labels"])
    assert_close(
        submission.sft_loss(logits, packed["labels"]),
        expected,
        what="the loss of the packed batch (against each example alone)",
        rtol=1e-9,
        atol=1e-9,
        misconceptions=mistakes,
    )

    padded = submission.pad_batch(examples, 0)
    check_batch(padded, ("input_ids", "attention_mask", "labels"), "pad_batch")
    ids, keys = build_pad(examples, 0)["input_ids"], build_pad(examples, 0)["attention_mask"]
    expect(
        padded["labels"].shape == ids.shape,
        "pad_batch's labels must be (len(examples), L), L the longest example: check pad_batch first "
        "(test_pad_batch_cases)",
        detail=f"labels of shape {tuple(padded['labels'].shape)}, expected {tuple(ids.shape)}",
    )
    length = ids.shape[1]
    mask = torch.ones(length, length, dtype=torch.bool).tril() & keys.bool()[:, None, :]
    pos = torch.arange(length).expand(ids.shape)
    logits = attend(model, ids, pos, mask) @ model["out"]
    mistakes = loss_mistakes(logits, build_pad(examples, 0)["labels"])
    for words, kw in [
        (PROMPT_LABELED, {"prompt_labeled": True}),
        (LEFT_PADDED, {"left": True}),
        (PAD_BY_ID, {"by_id": True}),
        (PRESHIFTED, {"shifted": True}),
    ]:
        mistakes[words] = token_loss(logits, build_pad(examples, 0, **kw)["labels"])
    assert_close(
        submission.sft_loss(logits, padded["labels"]),
        expected,
        what="the loss of the padded batch (against each example alone)",
        rtol=1e-9,
        atol=1e-9,
        misconceptions=mistakes,
    )


# ---------------------------------------------------------------------------- the loss


def random_labels(gen, n_rows, length, vocab):
    """Labels with a random prompt and padding per row: very different counts of targets per row."""
    labels = torch.full((n_rows, length), X, dtype=torch.int64)
    for b in range(n_rows):
        start = int(gen.integers(0, length - 1))
        stop = int(gen.integers(start + 1, length + 1))
        labels[b, start:stop] = torch.from_numpy(gen.integers(0, vocab, stop - start))
    labels[0, :] = torch.from_numpy(gen.integers(0, vocab, length))  # one row fully counted
    return labels


def test_loss_random(submission, seed):
    """sft_loss on random logits and labels equals F.cross_entropy(ignore_index=-100) on the shifted pair."""

    def check(sizes, seed):
        gen = np.random.default_rng(seed)
        n_rows, length, vocab = sizes["rows"], sizes["length"] + 1, sizes["vocab"] + 1
        logits = torch.from_numpy(gen.standard_normal((n_rows, length, vocab)) * 2).float()
        labels = random_labels(gen, n_rows, length, vocab)
        expected = F.cross_entropy(
            logits[:, :-1].double().reshape(-1, vocab), labels[:, 1:].reshape(-1), ignore_index=X
        ).float()
        assert_close(
            submission.sft_loss(logits, labels),
            expected,
            what="the loss",
            misconceptions={k: v.float() for k, v in loss_mistakes(logits.double(), labels).items()},
        )

    shrink(check, {"rows": 5, "length": 12, "vocab": 10}, seed=seed, minimum={"rows": 2}, budget=30)


def test_loss_unequal_rows(submission):
    """Row 0 holds 8 targets and row 1 one: the loss weighs each target the same, not each row."""
    logits = torch.zeros(2, 10, 4)
    logits[0, :, 0] = 3.0  # row 0 predicts token 0 confidently (its targets are 0: a small loss)
    labels = torch.full((2, 10), X, dtype=torch.int64)
    labels[0, 1:9] = 0
    labels[1, 5] = 2  # row 1: one target, predicted with uniform logits (loss log 4)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 4), labels[:, 1:].reshape(-1), ignore_index=X)
    assert_close(
        submission.sft_loss(logits, labels),
        expected,
        what="the loss",
        misconceptions=loss_mistakes(logits, labels),
    )


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]
)
def test_loss_half_precision(submission, rng, dtype):
    """float16 / bfloat16 logits give a float32 loss, computed in float32."""
    logits = torch.from_numpy(rng.standard_normal((3, 9, 50)) * 4).to(dtype)
    labels = random_labels(rng, 3, 9, 50)
    expected = F.cross_entropy(
        logits[:, :-1].double().reshape(-1, 50), labels[:, 1:].reshape(-1), ignore_index=X
    ).float()
    assert_close(
        submission.sft_loss(logits, labels),
        expected,
        what="the loss",
        rtol=1e-5,
        atol=1e-5,
        misconceptions={
            "the loss matches the logits' own half-precision dtype: return a float32 loss": expected.to(
                dtype
            ),
            **{k: v.float() for k, v in loss_mistakes(logits.double(), labels).items()},
        },
    )


def test_loss_float64(submission, rng):
    """float64 logits give a float64 loss."""
    logits = torch.from_numpy(rng.standard_normal((2, 7, 6)))
    labels = random_labels(rng, 2, 7, 6)
    expected = F.cross_entropy(logits[:, :-1].reshape(-1, 6), labels[:, 1:].reshape(-1), ignore_index=X)
    assert_close(
        submission.sft_loss(logits, labels),
        expected,
        what="the loss",
        rtol=1e-12,
        atol=1e-12,
        misconceptions=loss_mistakes(logits, labels),
    )


def test_loss_no_counted_target(submission):
    """Single-token responses with empty prompts leave no target: the loss is 0, its gradient 0."""
    batch = build_pack([([], [3]), ([], [5]), ([], [1])], 4, 0)
    logits = torch.randn(1, 4, 8, requires_grad=True)
    found = submission.sft_loss.backward(logits, batch["labels"], grad_output=torch.tensor(1.0))
    got = found.output
    is_nan = isinstance(got, torch.Tensor) and got.is_floating_point() and bool(torch.isnan(got).any())
    assert_close(
        got, torch.tensor(0.0), what="the loss with no counted target", hint=NAN_NO_TARGET if is_nan else ""
    )
    assert_close(
        found.inputs[0], torch.zeros(1, 4, 8), what="the gradient of the logits with no counted target"
    )


def test_loss_gradient(submission, rng):
    """The gradient of sft_loss with respect to the logits matches autograd's through F.cross_entropy.

    Every row has three counted targets here, so that this test checks the gradient alone (the
    value tests catch a mean of per-row means)."""
    logits = torch.from_numpy(rng.standard_normal((3, 8, 7))).float().requires_grad_(True)
    labels = torch.full((3, 8), X, dtype=torch.int64)
    for b, start in enumerate((1, 3, 5)):
        labels[b, start : start + 3] = torch.from_numpy(rng.integers(0, 7, 3))

    def trusted(lg, lb):
        return F.cross_entropy(lg[:, :-1].reshape(-1, 7), lb[:, 1:].reshape(-1), ignore_index=X)

    value = logits.detach()
    assert_close(
        submission.sft_loss(value, labels),
        trusted(value, labels),
        what="the loss",
        misconceptions=loss_mistakes(value, labels),
    )

    assert_gradients_close(
        submission.sft_loss, trusted, (logits, labels), grad_output=torch.tensor(0.7), names=("logits",)
    )


# ---------------------------------------------------------------------------- errors and inputs


@pytest.mark.parametrize(
    "function, args",
    [
        pytest.param("pack_batch", ([([1], [2]), ([1, 2, 3, 4], [5, 6])], 5, 0), id="pack-too-long"),
        pytest.param("pack_batch", ([([1], [])], 4, 0), id="pack-empty-response"),
        pytest.param("pack_batch", ([], 4, 0), id="pack-no-examples"),
        pytest.param("pad_batch", ([([1, 2], [3]), ([], [])], 0), id="pad-empty-response"),
        pytest.param("pad_batch", ([], 0), id="pad-no-examples"),
    ],
)
def test_errors(submission, function, args):
    """An example longer than row_len, an empty response or no examples at all raise ValueError."""
    try:
        getattr(submission, function)(*args)
    except ValueError:
        return
    pytest.fail(
        f"{function} returned normally (or raised something else) where the lesson asks for ValueError"
    )


def test_inputs_unchanged(submission, rng):
    """pad_batch, pack_batch and sft_loss leave the examples, logits and labels as they were."""
    # Only the inputs are checked here: the values are checked by the tests of each function above.
    examples = [([4, 5], [6, 7]), ([], [8, 9, 1]), ([3], [2])]
    keep = "build new lists and tensors from the examples; never append to or assign into the ones given"
    call_unchanged(submission.pad_batch, examples, 0, names=("examples",), what="pad_batch", hint=keep)
    call_unchanged(submission.pack_batch, examples, 6, 0, names=("examples",), what="pack_batch", hint=keep)
    logits = torch.from_numpy(rng.standard_normal((2, 6, 9))).float()
    labels = random_labels(rng, 2, 6, 9)
    call_unchanged(
        submission.sft_loss,
        logits,
        labels,
        names=("logits", "labels"),
        what="sft_loss",
        hint="compute on new tensors (slices, torch.where); never write into logits or labels",
    )
