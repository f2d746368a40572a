"""Hidden tests for quantization: exact codes against a float32 implementation of the stated formulas
and against torch.quantize_per_channel / quantize_per_tensor, exact ties, weights where w / scale and
w * (1 / scale) round apart, all-zero rows and groups,
one-sided and constant groups, packing, rejected group sizes, dtypes, the matmul's error bound, and
inputs left unchanged."""

import warnings

import numpy as np
import pytest
import torch

from grader.testing import assert_close, call_unchanged, expect, shrink

HALF_UP = "rounded halves up (torch.floor(v + 0.5))? Use torch.round: halves go to the even neighbour"
BY_128 = "divided absmax by 128? The scale is absmax / 127 and the codes go from -127 to 127"
SWAPPED = "nibbles swapped? Element 2i goes in the LOW nibble (bits 0-3), element 2i + 1 in the HIGH nibble"
WRONG_DIM = "one scale per column? Per output channel means one scale per ROW of W (absmax over dim 1)"
PER_TENSOR = "one scale for the whole tensor? per_channel=True asks for one scale per row"
PER_CHANNEL = "one scale per row? per_channel=False asks for one scale for the whole tensor"
NO_ZERO = "used the group's own min and max? Widen the range to contain 0: lo = min(min, 0), hi = max(max, 0)"
TRUNCATED = "zero point truncated (cast to an integer) instead of rounded? zero = round(-lo / scale)"
HALF_COMPUTE = "computed in the weight's half dtype? Convert w to float32 first and compute everything there"
ZERO_NAN = "scale 0 for the all-zero row? An all-zero row gets scale 1.0 (and codes 0): never 0 / 0"
RECIPROCAL = "multiplied by 1/scale? divide by the scale: w * (1/scale) can round to another code"
INPLACE = (
    "an argument was modified in place: w.to(torch.float32) is w itself when w is float32, so w /= ... "
    "overwrites the caller's weight; compute new tensors instead"
)
RAISE_HINT = "check the argument at the start and raise ValueError with a message"


# ---------------------------------------------------------------------------- oracles and mistakes


def oracle_int8(
    w,
    per_channel=True,
    *,
    divisor=127.0,
    qmin=-127,
    qmax=127,
    dim=1,
    half_up=False,
    compute=None,
    zero_one=True,
    reciprocal=False,
):
    """The stated INT8 formulas in float32 (or the named mistakes)."""
    w32 = w.to(compute or torch.float32)
    absmax = w32.abs().amax(dim=dim) if per_channel else w32.abs().amax()
    scale = absmax / divisor
    scale = torch.where(absmax == 0, torch.ones_like(scale) if zero_one else scale, scale)
    s = scale.unsqueeze(dim) if per_channel else scale
    v = w32 * (1.0 / s) if reciprocal else w32 / s
    r = torch.floor(v + 0.5) if half_up else torch.round(v)
    return torch.clamp(r, qmin, qmax).to(torch.int8), scale.to(torch.float32)


def oracle_int4(
    w, g, *, widen=True, half_up=False, truncate_zero=False, compute=None, zero_one=True, reciprocal=False
):
    """The stated INT4 formulas in float32 (or the named mistakes): (codes, scale, zero_point).

    reciprocal: w * (1 / scale) (and -lo * (1 / scale) for the zero point) instead of dividing."""
    out_f, in_f = w.shape
    groups = w.to(compute or torch.float32).reshape(out_f, in_f // g, g)
    lo, hi = groups.amin(-1), groups.amax(-1)
    if widen:
        lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
    scale = (hi - lo) / 15.0
    scale = torch.where(hi == lo, torch.ones_like(scale) if zero_one else scale, scale)
    rnd = (lambda v: torch.floor(v + 0.5)) if half_up else torch.round
    inv = 1.0 / scale
    zero_v = -lo * inv if reciprocal else -lo / scale
    zero = torch.clamp(torch.trunc(zero_v) if truncate_zero else rnd(zero_v), 0, 15)
    v = groups * inv.unsqueeze(-1) if reciprocal else groups / scale.unsqueeze(-1)
    q = torch.clamp(rnd(v) + zero.unsqueeze(-1), 0, 15)
    return q.reshape(out_f, in_f).to(torch.uint8), scale.to(torch.float32), zero.to(torch.uint8)


def oracle_pack(q, swapped=False):
    q = q.to(torch.uint8)
    a, b = q[..., 0::2], q[..., 1::2]
    return (b | (a << 4)) if swapped else (a | (b << 4))


def oracle_dequant_int4(q, scale, zero, g):
    out_f, in_f = q.shape
    groups = q.double().reshape(out_f, in_f // g, g)
    return ((groups - zero.double().unsqueeze(-1)) * scale.double().unsqueeze(-1)).reshape(out_f, in_f)


def int8_mistakes(w, per_channel):
    found = {
        HALF_UP: oracle_int8(w, per_channel, half_up=True),
        BY_128: oracle_int8(w, per_channel, divisor=128.0, qmin=-128),
        PER_TENSOR if per_channel else PER_CHANNEL: oracle_int8(w, not per_channel),
        ZERO_NAN: oracle_int8(w, per_channel, zero_one=False),
        RECIPROCAL: oracle_int8(w, per_channel, reciprocal=True),
    }
    if per_channel:
        found[WRONG_DIM] = oracle_int8(w, True, dim=0)
    if w.dtype in (torch.float16, torch.bfloat16):
        found[HALF_COMPUTE] = oracle_int8(w, per_channel, compute=w.dtype)
    return found


def int4_mistakes(w, g):
    found = {
        HALF_UP: oracle_int4(w, g, half_up=True),
        NO_ZERO: oracle_int4(w, g, widen=False),
        TRUNCATED: oracle_int4(w, g, truncate_zero=True),
        ZERO_NAN: oracle_int4(w, g, zero_one=False),
        RECIPROCAL: oracle_int4(w, g, reciprocal=True),
    }
    if w.dtype in (torch.float16, torch.bfloat16):
        found[HALF_COMPUTE] = oracle_int4(w, g, compute=w.dtype)
    return found


def pick(mistakes, i):
    """Item i of every mistake's output tuple, for assert_close on one returned tensor."""
    return {label: out[i] for label, out in mistakes.items()}


def check_int8(got, w, per_channel, *, hint=""):
    expect(
        isinstance(got, (tuple, list)) and len(got) == 2,
        "quantize_int8 must return a tuple (q, scale)",
    )
    q_want, s_want = oracle_int8(w, per_channel)
    found = int8_mistakes(w, per_channel)
    kind = "per-channel" if per_channel else "per-tensor"
    assert_close(got[1], s_want, what=f"the {kind} int8 scale", hint=hint, misconceptions=pick(found, 1))
    assert_close(got[0], q_want, what=f"the {kind} int8 codes", hint=hint, misconceptions=pick(found, 0))


def check_int4(got, w, g, *, hint=""):
    expect(
        isinstance(got, (tuple, list)) and len(got) == 3,
        "quantize_int4 must return a tuple (q, scale, zero_point)",
    )
    want = oracle_int4(w, g)
    found = int4_mistakes(w, g)
    assert_close(got[1], want[1], what="the int4 scales", hint=hint, misconceptions=pick(found, 1))
    assert_close(got[2], want[2], what="the int4 zero points", hint=hint, misconceptions=pick(found, 2))
    assert_close(got[0], want[0], what="the int4 codes", hint=hint, misconceptions=pick(found, 0))


def randn(rng, *shape, scale=1.0, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32) * np.float32(scale)).to(dtype)


def uniform(rng, lo, hi, n):
    return torch.from_numpy(rng.uniform(float(lo), float(hi), size=n).astype(np.float32))


def straddling(scale, ks, span=48):
    """float32 weights w near (k + 0.5) * scale, k in ks, where torch.round(w / scale) and
    torch.round(w * (1 / scale)) differ (scale: a 0-dim float32 tensor). Scans `span` ulps either side
    of each half; both quotients are correctly rounded float32 operations, so this is exact."""
    centre = ((torch.tensor(list(ks), dtype=torch.float64) + 0.5) * scale.double()).float()
    bits = centre.view(torch.int32).unsqueeze(1) + torch.arange(-span, span + 1, dtype=torch.int32)
    w = bits.view(torch.float32).flatten()
    return w[torch.round(w / scale) != torch.round(w * (1.0 / scale))]


def draw_straddling(draw, ks, at_least, tries=200):
    """Draw scales with `draw()` until one has at least `at_least` straddling weights (a scale whose
    reciprocal is nearly exact has few or none): (that draw, its straddling weights)."""
    for _ in range(tries):
        drawn = draw()
        found = straddling(drawn[-1], ks(drawn))
        if len(found) >= at_least:
            return drawn, found
    raise AssertionError("no scale with enough weights where w / scale and w * (1 / scale) round apart")


def pick_some(rng, values, n):
    return values[torch.from_numpy(rng.choice(len(values), size=min(n, len(values)), replace=False))]


# ---------------------------------------------------------------------------- INT8


@pytest.mark.parametrize(
    "per_channel", [pytest.param(True, id="per-channel"), pytest.param(False, id="per-tensor")]
)
def test_int8_random(submission, seed, per_channel):
    """Exact int8 codes and scales on random weights with rows of very different magnitudes."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        w = randn(rng, sizes["out"], sizes["in"])
        w = w * torch.from_numpy(np.exp(rng.uniform(-3, 3, size=(sizes["out"], 1))).astype(np.float32))
        check_int8(submission.quantize_int8(w, per_channel=per_channel), w, per_channel)

    shrink(check, {"out": 24, "in": 40}, seed=seed, minimum={"out": 2, "in": 3})


@pytest.mark.parametrize(
    "per_channel", [pytest.param(True, id="per-channel"), pytest.param(False, id="per-tensor")]
)
def test_int8_matches_torch(submission, rng, per_channel):
    """The int8 codes agree with PyTorch's torch.quantize_per_channel / quantize_per_tensor (zero point 0).

    torch multiplies by 1 / scale where the lesson divides, so a code may differ by one where w / scale is
    within a hair of a half; those few positions are left to the other tests."""
    w = randn(rng, 32, 48) * torch.linspace(0.01, 3.0, 32).unsqueeze(1)
    _, scale = oracle_int8(w, per_channel)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if per_channel:
            tq = torch.quantize_per_channel(
                w, scale.double(), torch.zeros(32, dtype=torch.long), 0, torch.qint8
            )
        else:
            tq = torch.quantize_per_tensor(w, float(scale), 0, torch.qint8)
    want = tq.int_repr()
    ratio = w.double() / (scale.double().unsqueeze(1) if per_channel else scale.double())
    clear = ((ratio - ratio.floor()) - 0.5).abs() > 1e-3  # away from a tie
    got = submission.quantize_int8(w, per_channel=per_channel)
    expect(isinstance(got, (tuple, list)) and len(got) == 2, "quantize_int8 must return a tuple (q, scale)")
    q = got[0]
    expect(
        isinstance(q, torch.Tensor) and q.shape == w.shape and q.dtype == torch.int8,
        "the int8 codes must be a torch.int8 tensor of the weight's shape",
    )
    same = bool((q[clear] == want[clear]).all())
    expect(
        same,
        "the int8 codes differ from those of torch.quantize_per_channel / quantize_per_tensor "
        "with scale absmax / 127",
        hint="scale = absmax / 127 (per row for per_channel=True), q = clamp(round(w / scale), -127, 127)",
    )


@pytest.mark.parametrize(
    "per_channel", [pytest.param(True, id="per-channel"), pytest.param(False, id="per-tensor")]
)
def test_int8_exact_ties(submission, rng, per_channel):
    """Weights where w / scale is exactly k + 0.5 (scales powers of two) round half to even."""
    rows = []
    for e in (4, 6, 7):  # scale 2^-e: the row's absmax is 127 * 2^-e
        k = torch.from_numpy(rng.integers(-126, 126, size=15).astype(np.float32))
        halves = (k + 0.5) * 2.0**-e
        rows.append(torch.cat([torch.tensor([127 * 2.0**-e]), halves]))
    w = torch.stack(rows)
    if not per_channel:
        w = w[:1].repeat(3, 1) * torch.tensor([[1.0], [-1.0], [0.5]])
    check_int8(submission.quantize_int8(w, per_channel=per_channel), w, per_channel)


@pytest.mark.parametrize(
    "per_channel", [pytest.param(True, id="per-channel"), pytest.param(False, id="per-tensor")]
)
def test_int8_divides_by_scale(submission, rng, per_channel):
    """Weights where w / scale and w * (1 / scale) round to different codes: the codes come from w / scale.

    Built on purpose whatever the seed: every row holds weights a hair from (k + 0.5) * scale, found
    by scanning ulps, where the float32 quotient and the product with the float32 reciprocal fall on
    either side of the rounding boundary."""
    rows, cols = 8, 48

    def draw():
        absmax = torch.tensor(np.float32(rng.uniform(0.05, 4.0)))
        return absmax, absmax / 127.0  # the scale exactly as the formula computes it in float32

    def ks(drawn):
        return range(-126, 126)

    common = draw_straddling(draw, ks, 4 * rows) if not per_channel else None
    w = []
    for _ in range(rows):
        (absmax, _), found = common or draw_straddling(draw, ks, 8)
        picked = pick_some(rng, found, 20)
        sign = float(rng.choice([-1.0, 1.0]))
        row = torch.cat(
            [(absmax * sign).reshape(1), picked, uniform(rng, -absmax, absmax, cols - 1 - len(picked))]
        )
        w.append(row[torch.from_numpy(rng.permutation(cols))])
    w = torch.stack(w)
    apart = oracle_int8(w, per_channel)[0] != oracle_int8(w, per_channel, reciprocal=True)[0]
    assert bool(apart.any(dim=1).all()), "the test's own construction: every row must hold such a weight"
    check_int8(submission.quantize_int8(w, per_channel=per_channel), w, per_channel)


def test_int8_zero_rows(submission, rng):
    """All-zero rows get scale 1.0 and codes 0, no NaN, and dequantise to zeros."""
    w = randn(rng, 6, 20)
    w[1] = 0.0
    w[4] = 0.0
    got = submission.quantize_int8(w, per_channel=True)
    expect(isinstance(got, (tuple, list)) and len(got) == 2, "quantize_int8 must return a tuple (q, scale)")
    expect(
        isinstance(got[1], torch.Tensor) and bool(torch.isfinite(got[1].double()).all()),
        "the scales of a weight with all-zero rows must be finite numbers",
        hint=ZERO_NAN,
    )
    check_int8(got, w, True, hint=ZERO_NAN)
    deq = submission.dequantize_int8(got[0], got[1])
    assert_close(deq[[1, 4]], torch.zeros(2, 20), what="the dequantised all-zero rows", hint=ZERO_NAN)
    zeros = submission.quantize_int8(torch.zeros(3, 4), per_channel=False)
    assert_close(
        zeros[1], torch.tensor(1.0), what="the per-tensor scale of an all-zero weight", hint=ZERO_NAN
    )
    assert_close(zeros[0], torch.zeros(3, 4, dtype=torch.int8), what="the codes of an all-zero weight")


def test_int8_dequantize(submission, rng):
    """dequantize_int8 applies scale[j] to row j (per channel) or one scale to all (per tensor)."""
    q = torch.from_numpy(rng.integers(-127, 128, size=(5, 9)).astype(np.int8))
    scale = torch.from_numpy(rng.uniform(0.001, 0.1, size=5).astype(np.float32))
    assert_close(
        submission.dequantize_int8(q, scale),
        q.float() * scale.unsqueeze(1),
        what="dequantize_int8(q, scale) with one scale per row",
    )
    assert_close(
        submission.dequantize_int8(q, torch.tensor(0.02)),
        q.float() * torch.tensor(0.02),
        what="dequantize_int8(q, scale) with a 0-dim scale",
    )


# ---------------------------------------------------------------------------- INT4


@pytest.mark.parametrize(
    "group_size", [pytest.param(2, id="g2"), pytest.param(8, id="g8"), pytest.param(32, id="g32")]
)
def test_int4_random(submission, seed, group_size):
    """Exact int4 codes, scales and zero points on random weights, with a random offset per row."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        w = randn(rng, sizes["out"], sizes["groups"] * group_size)
        w = w + torch.from_numpy(rng.uniform(-1.5, 1.5, size=(sizes["out"], 1)).astype(np.float32))
        check_int4(submission.quantize_int4(w, group_size), w, group_size)

    shrink(check, {"out": 12, "groups": 4}, seed=seed, minimum={"out": 1, "groups": 1})


def test_int4_one_sided_and_constant_groups(submission, rng):
    """Groups of only positive or only negative weights, and constant groups: the range contains 0."""
    g = 8
    pos = randn(rng, 1, g).abs() + 0.5
    neg = -(randn(rng, 1, g).abs() + 0.25)
    w = torch.cat(
        [
            torch.cat([pos, neg, torch.full((1, g), 0.7), torch.full((1, g), -2.0)], dim=1),
            torch.cat([neg, torch.full((1, g), 3.0), pos, randn(rng, 1, g)], dim=1),
        ]
    )
    check_int4(submission.quantize_int4(w, g), w, g)


def test_int4_divides_by_scale(submission, rng):
    """Weights where w / scale and w * (1 / scale) round to different int4 codes: the codes come from
    w / scale.

    Built on purpose whatever the seed: each group has lo = -z * t and hi = (15 - z) * t (so the zero
    point z is far from a half either way) and weights a hair from (k + 0.5) * scale where the two
    round apart."""
    out_f, n_groups, g = 6, 4, 16

    def draw():
        t, z = np.float32(rng.uniform(0.01, 0.3)), int(rng.integers(1, 15))
        lo, hi = torch.tensor(np.float32(-z * t)), torch.tensor(np.float32((15 - z) * t))
        return z, lo, hi, (hi - lo) / 15.0  # the scale exactly as the formula computes it in float32

    def ks(drawn):
        return range(-drawn[0], 15 - drawn[0])

    w = []
    for _ in range(out_f):
        row = []
        for _ in range(n_groups):
            (_, lo, hi, _), found = draw_straddling(draw, ks, 2)
            picked = pick_some(rng, found[(found > lo) & (found < hi)], 8)
            group = torch.cat(
                [lo.reshape(1), hi.reshape(1), picked, uniform(rng, lo, hi, g - 2 - len(picked))]
            )
            row.append(group[torch.from_numpy(rng.permutation(g))])
        w.append(torch.cat(row))
    w = torch.stack(w)
    want, wrong = oracle_int4(w, g), oracle_int4(w, g, reciprocal=True)
    apart = (want[0] != wrong[0]).reshape(out_f, n_groups, g).any(dim=-1)
    assert bool(apart.all()) and bool((want[2] == wrong[2]).all()), "the test's own construction"
    check_int4(submission.quantize_int4(w, g), w, g)


def test_int4_zero_groups(submission, rng):
    """All-zero groups get scale 1.0, zero point 0 and codes 0: no NaN, and they dequantise to zeros."""
    w = randn(rng, 3, 24)
    w[0, 8:16] = 0.0
    w[2, :8] = 0.0
    w[1] = 0.0
    got = submission.quantize_int4(w, 8)
    expect(
        isinstance(got, (tuple, list)) and len(got) == 3,
        "quantize_int4 must return a tuple (q, scale, zero_point)",
    )
    expect(
        isinstance(got[1], torch.Tensor) and bool(torch.isfinite(got[1].double()).all()),
        "the scales of a weight with all-zero groups must be finite numbers",
        hint=ZERO_NAN,
    )
    check_int4(got, w, 8, hint=ZERO_NAN)


def test_int4_exact_ties(submission, rng):
    """Weights where w / scale is exactly k + 0.5 (scales powers of two) round half to even."""
    rows = []
    for e in (2, 3, 5):  # lo = -7 * 2^-e and hi = 8 * 2^-e: scale 2^-e, zero point 7
        step = 2.0**-e
        k = torch.from_numpy(rng.integers(-7, 7, size=14).astype(np.float32))
        rows.append(torch.cat([torch.tensor([-7 * step, 8 * step]), (k + 0.5) * step]))
    w = torch.stack(rows)
    check_int4(submission.quantize_int4(w, 16), w, 16)


def test_int4_dequantize(submission, rng):
    """dequantize_int4 computes (q - zero_point) * scale with each group's own scale and zero point."""
    q = torch.from_numpy(rng.integers(0, 16, size=(4, 12)).astype(np.uint8))
    zero = torch.from_numpy(rng.integers(0, 16, size=(4, 3)).astype(np.uint8))
    scale = torch.from_numpy(rng.uniform(0.01, 0.2, size=(4, 3)).astype(np.float32))
    want = oracle_dequant_int4(q, scale, zero, 4).float()
    wrapped = ((q.reshape(4, 3, 4) - zero.unsqueeze(-1)).float() * scale.unsqueeze(-1)).reshape(4, 12)
    assert_close(
        submission.dequantize_int4(q, scale, zero, 4),
        want,
        what="dequantize_int4(q, scale, zero_point, 4)",
        misconceptions={
            "subtracted in uint8, which wraps around? Convert q and zero_point to float32 first": wrapped
        },
    )


# ---------------------------------------------------------------------------- packing


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((16,), id="a-vector"),
        pytest.param((5, 12), id="matrix"),
        pytest.param((2, 3, 8), id="3d"),
    ],
)
def test_pack_random(submission, rng, shape):
    """pack_int4 on random codes (element 2i low nibble) and unpack_int4 as its exact inverse."""
    q = torch.from_numpy(rng.integers(0, 16, size=shape).astype(np.uint8))
    packed = submission.pack_int4(q)
    assert_close(packed, oracle_pack(q), what="pack_int4(q)", misconceptions={SWAPPED: oracle_pack(q, True)})
    assert_close(submission.unpack_int4(oracle_pack(q)), q, what="unpack_int4(packed)", hint=SWAPPED)
    raw = torch.from_numpy(rng.integers(0, 256, size=shape).astype(np.uint8))
    assert_close(submission.pack_int4(submission.unpack_int4(raw)), raw, what="pack_int4(unpack_int4(bytes))")


def test_pack_int64_codes(submission, rng):
    """Codes given as int64 (as torch.round(...).long() would give) pack to the same uint8 bytes."""
    q = torch.from_numpy(rng.integers(0, 16, size=(3, 10)))
    assert_close(
        submission.pack_int4(q),
        oracle_pack(q),
        what="pack_int4(q) for int64 codes",
        misconceptions={SWAPPED: oracle_pack(q, True)},
    )


@pytest.mark.hint(RAISE_HINT)
def test_pack_odd_length_raises(submission):
    """A last dim of odd length cannot be packed: pack_int4 raises ValueError."""
    try:
        submission.pack_int4(torch.zeros(2, 7, dtype=torch.uint8))
    except ValueError:
        return
    pytest.fail("pack_int4 on codes of odd length returned normally; it must raise ValueError")


REJECTED = [(15, 5), (12, 3), (8, 1), (8, 0), (8, -2), (12, 8)]  # (in_features, group_size)


@pytest.mark.hint(RAISE_HINT)
def test_group_size_rejected(submission, rng):
    """Group sizes that are odd (3, 5), 1, 0, negative, or do not divide in_features raise ValueError."""
    for in_features, group_size in REJECTED:
        w = randn(rng, 2, in_features)
        try:
            submission.quantize_int4(w, group_size)
        except ValueError:
            continue
        pytest.fail(
            f"quantize_int4 with {in_features} input features and group_size={group_size} returned "
            "normally; it must raise ValueError"
        )


# ---------------------------------------------------------------------------- dtypes


@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(torch.float16, id="float16"),
        pytest.param(torch.bfloat16, id="bfloat16"),
        pytest.param(torch.float64, id="float64"),
    ],
)
def test_dtypes(submission, rng, dtype):
    """float16, bfloat16 and float64 weights are converted to float32, then quantised as float32 ones."""
    w = (randn(rng, 64, 256) * 0.37).to(dtype)
    for per_channel in (True, False):
        check_int8(submission.quantize_int8(w, per_channel=per_channel), w, per_channel)
    check_int4(submission.quantize_int4(w, 8), w, 8)


# ---------------------------------------------------------------------------- the matmul


@pytest.mark.parametrize(
    "lead",
    [pytest.param((7,), id="rows"), pytest.param((2, 3), id="batch-tokens"), pytest.param((), id="vector")],
)
def test_int4_matmul(submission, rng, lead):
    """int4_matmul equals x @ W_hat.T, and is within sum_i |x_i| * scale / 2 of the exact x @ W.T."""
    out_f, in_f, g = 20, 64, 16
    w = randn(rng, out_f, in_f, scale=0.5)
    q, scale, zero = oracle_int4(w, g)
    packed = oracle_pack(q)
    x = randn(rng, *lead, in_f)
    w_hat = oracle_dequant_int4(q, scale, zero, g)
    want = (x.double() @ w_hat.T).float()
    swapped_w = oracle_dequant_int4(
        torch.stack([q[:, 1::2], q[:, 0::2]], dim=-1).reshape(out_f, in_f), scale, zero, g
    )
    got = submission.int4_matmul(x, packed, scale, zero, g)
    assert_close(
        got,
        want,
        what="int4_matmul(x, packed, scale, zero_point, group_size)",
        rtol=1e-4,
        atol=1e-4,
        misconceptions={SWAPPED: (x.double() @ swapped_w.T).float()},
    )
    exact = x.double() @ w.double().T
    bound = x.double().abs() @ (scale.double().repeat_interleave(g, dim=1) / 2).T
    slack = 1e-5 * (x.double().abs() @ w_hat.abs().T) + 1e-6
    within = bool(((got.double() - exact).abs() <= bound + slack).all())
    expect(
        within,
        "int4_matmul is further from x @ W.T than the bound sum_i |x_i| * scale[j, i // group_size] / 2",
        hint="dequantise with each group's own scale and zero point: (q - zero_point) * scale",
    )


# ---------------------------------------------------------------------------- inputs


def test_inputs_unchanged(submission, rng):
    """No function modifies its arguments in place (the weight, the codes, the scales, x)."""
    w = randn(rng, 6, 16)
    call_unchanged(
        submission.quantize_int8, w, names=("w",), what="quantize_int8", hint=INPLACE, per_channel=True
    )
    call_unchanged(
        submission.quantize_int8, w, names=("w",), what="quantize_int8", hint=INPLACE, per_channel=False
    )
    call_unchanged(
        submission.quantize_int4, w, 8, names=("w", "group_size"), what="quantize_int4", hint=INPLACE
    )
    q8, s8 = oracle_int8(w)
    call_unchanged(
        submission.dequantize_int8, q8, s8, names=("q", "scale"), what="dequantize_int8", hint=INPLACE
    )
    q, scale, zero = oracle_int4(w, 8)
    names = ("q", "scale", "zero_point", "group_size")
    call_unchanged(
        submission.dequantize_int4, q, scale, zero, 8, names=names, what="dequantize_int4", hint=INPLACE
    )
    call_unchanged(submission.pack_int4, q, names=("q",), what="pack_int4", hint=INPLACE)
    packed = oracle_pack(q)
    call_unchanged(submission.unpack_int4, packed, names=("packed",), what="unpack_int4", hint=INPLACE)
    x = randn(rng, 3, 16)
    call_unchanged(
        submission.int4_matmul,
        x,
        packed,
        scale,
        zero,
        8,
        names=("x", "packed", "scale", "zero_point", "group_size"),
        what="int4_matmul",
        hint=INPLACE,
    )
