"""Hidden tests for kv-cache: incremental decoding against the full forward pass over batches,
single steps, chunks and random schedules; the cache's form (the lesson specifies it: a list of
per-layer (k, v) tuples, keys after rotary); caches left unchanged, reused and branched; and the
cost of decoding, which must grow like the number of tokens, not its square.

Every decoding test hands back to decode_step exactly what prefill or decode_step returned;
test_cache_form checks that cache's contents against the reference's. The expected logits come
from the reference's full forward pass; the logits of likely mistakes come from `mistaken`, a
decoder with the mistake built in."""

import numpy as np
import pytest
import torch

from grader.testing import Call, assert_close, call_unchanged, expect, shrink

VOCAB = 64
TOL = {"rtol": 1e-4, "atol": 1e-4}  # the same arithmetic in another order: rounding only
STEP_HINT = (
    "with T_past positions cached, the new tokens sit at positions T_past .. T_past + T_new - 1 (for "
    "the rotary embedding), and new token i attends to every cached key and to the new keys 0 .. i"
)


def make_params(seed, vocab=VOCAB, d_model=32, n_head=2, n_layer=2, d_mlp=128):
    g = torch.Generator().manual_seed(int(seed))

    def w(*shape, std):
        return torch.randn(*shape, generator=g) * std

    C = d_model
    layers = [
        {
            "attn_norm": 1 + 0.1 * w(C, std=1.0),
            "wq": w(C, C, std=C**-0.5),
            "wk": w(C, C, std=C**-0.5),
            "wv": w(C, C, std=C**-0.5),
            "wo": w(C, C, std=C**-0.5),
            "mlp_norm": 1 + 0.1 * w(C, std=1.0),
            "w_up": w(C, d_mlp, std=C**-0.5),
            "w_down": w(d_mlp, C, std=d_mlp**-0.5),
        }
        for _ in range(n_layer)
    ]
    return {
        "n_head": n_head,
        "wte": w(vocab, C, std=1.0),
        "layers": layers,
        "norm_f": 1 + 0.1 * w(C, std=1.0),
        "lm_head": w(C, vocab, std=C**-0.5),
    }


def random_tokens(rng, batch, length, vocab=VOCAB):
    return torch.from_numpy(rng.integers(0, vocab, size=(batch, length))).long()


# ----------------------------------------------------------------------------- likely mistakes


def mistaken(ref, params, past, new, *, positions="right", mask="bottom_right", rerotate=False):
    """The logits of the tokens `new` after the tokens `past` (correctly cached), by a decoder that
    makes one mistake: rotary positions counted from 0 or one too far, the wrong mask, or the
    cached keys rotated a second time."""
    n_head = params["n_head"]
    T_past, T_new = past.shape[1], new.shape[1]
    cache = ref.prefill(params, past)[1] if T_past else None
    pos = {
        "right": torch.arange(T_past, T_past + T_new),
        "zero": torch.arange(T_new),
        "plus_one": torch.arange(T_past + 1, T_past + 1 + T_new),
    }[positions]
    ones = torch.ones(T_new, T_past + T_new, dtype=torch.bool)
    allowed = {"bottom_right": ones.tril(T_past), "top_left": ones.tril(), "none": ones}[mask]
    x = params["wte"][new]
    for i, layer in enumerate(params["layers"]):
        h = ref.rms_norm(x, layer["attn_norm"])
        q = ref.rope(ref.split_heads(h @ layer["wq"], n_head), pos)
        k = ref.split_heads(h @ layer["wk"], n_head)
        v = ref.split_heads(h @ layer["wv"], n_head)
        if cache is None:
            k = ref.rope(k, pos)
        elif rerotate:  # rotate after concatenating: the cached keys get a second rotation
            k = ref.rope(torch.cat([cache[i][0], k], dim=2), torch.arange(T_past + T_new))
            v = torch.cat([cache[i][1], v], dim=2)
        else:
            k = torch.cat([cache[i][0], ref.rope(k, pos)], dim=2)
            v = torch.cat([cache[i][1], v], dim=2)
        x = x + ref.merge_heads(ref.attention(q, k, v, allowed)) @ layer["wo"]
        x = x + ref.mlp(layer, ref.rms_norm(x, layer["mlp_norm"]))
    return ref.rms_norm(x, params["norm_f"]) @ params["lm_head"]


def step_mistakes(ref, params, past, new):
    """Likely mistakes of a decode step (past non-empty), by the logits they produce."""
    found = {
        "rotary positions restarted at 0 for the new tokens? they continue after the cache: T_past, "
        "T_past + 1, ...": mistaken(ref, params, past, new, positions="zero"),
        "positions one too far? the first new token is at position T_past (the cache holds 0 .. "
        "T_past - 1)": mistaken(ref, params, past, new, positions="plus_one"),
        "causal mask aligned top-left? the new tokens are the LAST positions: new token i sees every "
        "cached key and the new keys 0 .. i (bottom-right)": mistaken(
            ref, params, past, new, mask="top_left"
        ),
        "cached keys rotated a second time? they were stored after the rotary embedding: rotate only "
        "the new keys, at their own positions": mistaken(ref, params, past, new, rerotate=True),
    }
    if new.shape[1] > 1:
        found["no causal mask among the new tokens? new token i must not see the new tokens after it"] = (
            mistaken(ref, params, past, new, mask="none")
        )
    return found


def prefill_mistakes(ref, params, tokens):
    return {
        "no causal mask in prefill? position t may only attend to positions 0 .. t": mistaken(
            ref, params, tokens[:, :0], tokens, mask="none"
        ),
    }


# ----------------------------------------------------------------------------- calling the submission


def call(submission, name, *args):
    """prefill or decode_step, checked to return (logits, cache)."""
    result = getattr(submission, name)(*args)
    expect(
        isinstance(result, tuple) and len(result) == 2,
        f"{name} must return a tuple (logits, cache)",
    )
    logits = result[0]
    expect(isinstance(logits, torch.Tensor), f"{name}'s logits must be a torch.Tensor")
    B, T = args[1].shape
    expect(
        tuple(logits.shape) == (B, T, VOCAB) and logits.dtype == torch.float32,
        f"{name}'s logits must be a float32 tensor of shape (B, T_new, vocab), one row per new token",
        detail=f"got {str(logits.dtype).removeprefix('torch.')} {tuple(logits.shape)}; expected "
        f"float32 {(B, T, VOCAB)}",
    )
    return result


def run_schedule(submission, reference, params, tokens, prompt, chunks, *, what=""):
    """Prefill tokens[:, :prompt], then decode the chunk sizes in `chunks` one after the other,
    each against the full forward pass; the first step's failure names the likely mistake."""
    full = reference.forward(params, tokens)
    logits, cache = call(submission, "prefill", params, tokens[:, :prompt])
    assert_close(
        logits,
        full[:, :prompt],
        **TOL,
        what=f"prefill's logits{what}",
        misconceptions=prefill_mistakes(reference, params, tokens[:, :prompt]),
    )
    start = prompt
    for n, size in enumerate(chunks):
        new = tokens[:, start : start + size]
        logits, cache = call(submission, "decode_step", params, new, cache)
        where = f"position {start}" if size == 1 else f"positions {start} .. {start + size - 1}"
        assert_close(
            logits,
            full[:, start : start + size],
            **TOL,
            what=f"the logits of decode step {n + 1} ({where}){what}",
            hint=STEP_HINT,
            misconceptions=step_mistakes(reference, params, tokens[:, :start], new) if n == 0 else None,
        )
        start += size


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "batch, length",
    [
        pytest.param(1, 1, id="one-token"),
        pytest.param(3, 12, id="batch-of-3"),
        pytest.param(2, 33, id="longer"),
    ],
)
def test_prefill_matches_forward(submission, reference, rng, batch, length):
    """prefill's logits equal the full forward pass's at every position."""
    params = make_params(rng.integers(1 << 30))
    tokens = random_tokens(rng, batch, length)
    logits, _ = call(submission, "prefill", params, tokens)
    assert_close(
        logits,
        reference.forward(params, tokens),
        **TOL,
        what="prefill's logits",
        misconceptions=prefill_mistakes(reference, params, tokens),
    )


def test_single_steps(submission, reference, rng):
    """A batch of 3: prefill 6 tokens, then 20 steps of one token, each against the full pass."""
    params = make_params(rng.integers(1 << 30))
    tokens = random_tokens(rng, 3, 26)
    run_schedule(submission, reference, params, tokens, 6, [1] * 20)


def test_one_token_prompt(submission, reference, rng):
    """A single sequence (B = 1) with a prompt of a single token, then 8 single steps."""
    params = make_params(rng.integers(1 << 30))
    tokens = random_tokens(rng, 1, 9)
    run_schedule(submission, reference, params, tokens, 1, [1] * 8)


@pytest.mark.parametrize(
    "prompt, chunks",
    [
        pytest.param(5, [3, 1, 4, 2], id="chunks-3-1-4-2"),
        pytest.param(2, [6, 6], id="chunks-longer-than-the-prompt"),
        pytest.param(7, [1, 5, 1], id="chunk-between-single-steps"),
    ],
)
def test_chunks(submission, reference, rng, prompt, chunks):
    """Several new tokens per decode_step: each sees the cache and the new tokens up to itself."""
    params = make_params(rng.integers(1 << 30))
    tokens = random_tokens(rng, 2, prompt + sum(chunks))
    run_schedule(submission, reference, params, tokens, prompt, chunks)


def test_other_model_shape(submission, reference, rng):
    """4 heads of 8, 3 layers, a wider MLP: nothing may assume the default sizes."""
    params = make_params(rng.integers(1 << 30), d_model=32, n_head=4, n_layer=3, d_mlp=96)
    tokens = random_tokens(rng, 2, 14)
    run_schedule(submission, reference, params, tokens, 5, [1, 1, 3, 1, 1, 2], what=" (4 heads, 3 layers)")


def test_random_schedules(submission, reference, seed):
    """Random batch sizes, prompt lengths and chunk sizes."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        params = make_params(seed)
        steps, chunk = sizes["steps"], sizes["chunk"]
        tokens = random_tokens(rng, sizes["batch"], sizes["prompt"] + steps * chunk)
        run_schedule(submission, reference, params, tokens, sizes["prompt"], [chunk] * steps)

    shrink(check, {"batch": 3, "prompt": 9, "steps": 4, "chunk": 3}, seed=seed)


def test_cache_not_shared(submission, reference, rng):
    """One cache, used several times: decoding twice from it gives the same logits, and two
    different continuations of the same prompt each match their own full pass."""
    params = make_params(rng.integers(1 << 30))
    prompt = random_tokens(rng, 2, 6)
    a, b = random_tokens(rng, 2, 1), random_tokens(rng, 2, 2)
    hint = (
        "decode_step must leave the cache it was given as it was and return a new one: keep no state "
        "between calls (no module-level cache, no object changed in place)"
    )
    _, cache = call(submission, "prefill", params, prompt)
    first, cache_a = call(submission, "decode_step", params, a, cache)
    again, _ = call(submission, "decode_step", params, a, cache)
    assert_close(
        again, first, **TOL, what="the logits of decoding the same token twice from one cache", hint=hint
    )
    other, _ = call(submission, "decode_step", params, b, cache)
    assert_close(
        other,
        reference.forward(params, torch.cat([prompt, b], dim=1))[:, 6:],
        **TOL,
        what="the logits of a second continuation of the same prompt",
        hint=hint,
    )
    after_a, _ = call(submission, "decode_step", params, b[:, :1], cache_a)
    assert_close(
        after_a,
        reference.forward(params, torch.cat([prompt, a, b[:, :1]], dim=1))[:, 7:],
        **TOL,
        what="the logits of continuing the first continuation's cache",
        hint=hint,
    )


# ----------------------------------------------------------------------------- the cache itself

CACHE_FORM = (
    "the cache is a list with one (k, v) tuple per layer, in layer order; k and v are float32 tensors "
    "of shape (B, n_head, T_cached, head_dim), the keys taken after the rotary embedding"
)
UNROTATED = (
    "keys cached before the rotary embedding? cache each key after rotating it at its own position: "
    "it is then never rotated again"
)
SWAPPED = "keys and values swapped? each layer's item is the tuple (k, v), keys first"


def unrotated_keys(ref, params, tokens):
    """Each layer's keys of `tokens` before the rotary embedding: what caching them too early holds."""
    n_head = params["n_head"]
    T = tokens.shape[1]
    positions = torch.arange(T)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    x = params["wte"][tokens]
    keys = []
    for layer in params["layers"]:
        h = ref.rms_norm(x, layer["attn_norm"])
        q = ref.rope(ref.split_heads(h @ layer["wq"], n_head), positions)
        k = ref.split_heads(h @ layer["wk"], n_head)
        v = ref.split_heads(h @ layer["wv"], n_head)
        keys.append(k)
        x = x + ref.merge_heads(ref.attention(q, ref.rope(k, positions), v, mask)) @ layer["wo"]
        x = x + ref.mlp(layer, ref.rms_norm(x, layer["mlp_norm"]))
    return keys


def check_cache(ref, params, tokens, cache, who):
    """`cache`, returned by `who` after the tokens so far, against the reference's cache of them."""
    expected = ref.prefill(params, tokens)[1]
    unrotated = unrotated_keys(ref, params, tokens)
    expect(
        isinstance(cache, list) and len(cache) == len(expected),
        f"{who}'s cache must be a list with one (k, v) tuple per layer",
        detail=f"got {type(cache).__name__}"
        + (f" of {len(cache)} items" if isinstance(cache, list | tuple) else "")
        + f"; the model has {len(expected)} layers",
        hint=CACHE_FORM,
    )
    for i, (item, (k_want, v_want)) in enumerate(zip(cache, expected, strict=True)):
        expect(
            isinstance(item, tuple) and len(item) == 2 and all(isinstance(t, torch.Tensor) for t in item),
            f"each item of {who}'s cache must be a tuple (k, v) of two tensors",
            hint=CACHE_FORM,
        )
        k, v = item
        expect(
            tuple(k.shape) == tuple(k_want.shape) and tuple(v.shape) == tuple(v_want.shape),
            f"the keys and values in {who}'s cache must have shape (B, n_head, T_cached, head_dim)",
            detail=f"layer {i}: k {tuple(k.shape)}, v {tuple(v.shape)}; expected {tuple(k_want.shape)}",
            hint="split_heads gives (B, n_head, T, head_dim); the cached positions are dim 2",
        )
        assert_close(
            k,
            k_want,
            **TOL,
            what=f"the cached keys of params['layers'][{i}] after {who}",
            hint=CACHE_FORM,
            misconceptions={UNROTATED: unrotated[i], SWAPPED: v_want},
        )
        assert_close(
            v,
            v_want,
            **TOL,
            what=f"the cached values of params['layers'][{i}] after {who}",
            hint=CACHE_FORM,
            misconceptions={SWAPPED: k_want},
        )


def test_cache_form(submission, reference, rng):
    """The cache is the lesson's: a list of per-layer (k, v), (B, n_head, T_cached, head_dim), keys
    after rotary; after prefill and after a chunk, with 4 heads and 3 layers."""
    params = make_params(rng.integers(1 << 30), d_model=32, n_head=4, n_layer=3, d_mlp=96)
    tokens = random_tokens(rng, 2, 9)
    _, cache = call(submission, "prefill", params, tokens[:, :6])
    check_cache(reference, params, tokens[:, :6], cache, "prefill")
    _, cache = call(submission, "decode_step", params, tokens[:, 6:], cache)
    check_cache(reference, params, tokens, cache, "decode_step")


def test_cache_left_unchanged(submission, reference, rng):
    """decode_step leaves the cache it is given (and the parameters and tokens) as they were."""
    params = make_params(rng.integers(1 << 30))
    tokens = random_tokens(rng, 2, 8)
    _, cache = call(submission, "prefill", params, tokens[:, :5])
    # only the inputs here: the logits of a decode step of 3 tokens after a prompt of 5 are checked in
    # test_chunks (chunks-3-1-4-2), and the returned cache in test_cache_form
    result = call_unchanged(
        submission.decode_step,
        params,
        tokens[:, 5:],
        cache,
        names=("params", "tokens", "cache"),
        what="decode_step",
        hint="the caller may decode from the same cache again (beam search, parallel sampling): build "
        "a new list of new (k, v) tuples (torch.cat makes new tensors) and return it, never assign "
        "into, append to or write into the cache you were given",
    )
    expect(isinstance(result, tuple) and len(result) == 2, "decode_step must return a tuple (logits, cache)")


# ----------------------------------------------------------------------------- cost

# FLOPs (matmuls, runner-reported) of decode_all: a prompt of 4, then n tokens one at a time,
# for n = 16, 32, 64. With a cache a step costs a constant (the projections, the MLP, the head)
# plus attention over the cache, so the total grows like n^0.96 here; recomputing the whole
# forward pass at every step grows like n^1.86. (The probe costs time per tensor op, so the
# sizes stay small.)
PERF_PROMPT = 4


@pytest.mark.performance
def test_decode_flops(perf):
    """The FLOPs of decoding n tokens one at a time grow linearly with n, not quadratically."""
    params = make_params(7)

    def make(rng, n):
        tokens = random_tokens(rng, 2, PERF_PROMPT + n)
        return Call("decode_all", params, tokens, PERF_PROMPT)

    perf.scaling(
        "decode_flops",
        make,
        check=lambda actual, expected: assert_close(actual, expected, **TOL, what="decode_all's logits"),
        hint="each decode_step must reuse the cached keys and values: compute the projections, the "
        "MLP and the head for the new tokens only, never again for the cached positions",
    )
