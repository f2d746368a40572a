"""Hidden tests for semantic-search: cosine top-k against PyTorch's F.normalize, a matrix product
and a stable descending torch.sort in float64; ties built on purpose inside and across chunks;
zero and short vectors; dtypes; errors; MMR against an independent float64 greedy selection; inputs
left unchanged; and the memory of one call."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from grader.testing import Call, assert_close, call_unchanged, expect, shrink

# one wording per mistake, the same as in test_public.py where it shows there too
DOT = "the output matches ranking by the raw dot product: normalise queries and corpus rows to length 1 first"
NO_EPS = "the output matches dividing by ||x|| alone: divide by max(||x||, eps), as F.normalize does"
EPS_ADDED = "the output matches dividing by ||x|| + eps: divide by max(||x||, eps), as F.normalize does"
NAN = (
    "NaN scores came back where the inputs hold zero vectors: divide by max(||x||, eps), as F.normalize "
    "does, so that a zero vector has cosine 0 with everything"
)
HIGHER = (
    "the output matches ties broken towards the higher index: among equal scores the lower corpus index "
    "comes first (a stable descending sort)"
)
LATER_CHUNK = (
    "the output matches ties across chunk boundaries going to the later chunk: put the running best "
    "before the new chunk's scores and sort stably"
)
HALF = (
    "the scores match a computation in half precision: convert float16 / bfloat16 chunks to float32 "
    "before normalising, and return float32 scores"
)
MMR_MIN = (
    "the picks match the smallest similarity to the selected set: the redundancy term is the largest "
    "cosine with any selected candidate"
)
MMR_RELEVANCE = (
    "the picks match ranking by relevance alone: subtract (1 - lambda_) times the largest cosine with the "
    "selected candidates"
)
MMR_REVERSED = (
    "the picks match lambda_ and 1 - lambda_ swapped: lambda_ weighs relevance (1 is pure relevance)"
)
MMR_QUERY = (
    "the picks match a redundancy term made of the selected candidates' similarity to the query: it is "
    "the candidate's cosine with each selected candidate"
)
MMR_DOT = "the picks match raw dot products: normalise the query and the candidates to length 1 first"
MMR_FIRST = (
    "the picks match a first pick made by the MMR score: the first pick is the most relevant candidate, "
    "whatever lambda_"
)
MMR_HIGHER = "the picks match ties broken towards the higher index: equal MMR scores go to the lower index"

DTYPE_HINT = (
    "scores are float32 for float16, bfloat16 and float32 inputs and float64 for float64 inputs "
    "(torch.promote_types(corpus.dtype, torch.float32)); indices are torch.int64"
)


# ---------------------------------------------------------------------------- oracles (float64)


def out_dtype(dtype):
    return torch.promote_types(dtype, torch.float32)


def unit(x, eps, how="floor"):
    """Rows of x in float64 divided by their length, the way `how` says."""
    x = x.double()
    if how == "floor":
        return F.normalize(x, dim=-1, eps=eps)  # PyTorch's own: x / max(||x||, eps)
    norm = x.norm(dim=-1, keepdim=True)
    if how == "none":
        return x
    if how == "plain":
        return x / norm
    return x / (norm + eps)  # "added"


def sorted_desc(scores, ties="lower"):
    """A stable descending sort: equal scores keep the lower index first (or the higher one)."""
    if ties == "lower":
        return torch.sort(scores, dim=-1, descending=True, stable=True)
    values, order = torch.sort(scores, dim=-1, stable=True)
    return values.flip(-1), order.flip(-1)


def search(queries, corpus, k, *, eps=1e-8, how="floor", ties="lower", chunk_size=None):
    """The oracle (defaults) and its likely mistakes: (scores in the pinned dtype, int64 indices).
    With chunk_size, a chunked merge that puts each new chunk before the running best."""
    scores = unit(queries, eps, how) @ unit(corpus, eps, how).T
    if chunk_size is None:
        values, order = sorted_desc(scores, ties)
        values, order = values[:, :k], order[:, :k]
    else:
        values = scores.new_empty((scores.shape[0], 0))
        order = torch.empty((scores.shape[0], 0), dtype=torch.long)
        for start in range(0, scores.shape[1], chunk_size):
            block = scores[:, start : start + chunk_size]
            index = torch.arange(start, start + block.shape[1]).expand_as(block)
            merged, pos = torch.sort(torch.cat([block, values], 1), dim=1, descending=True, stable=True)
            values, order = merged[:, :k], torch.cat([index, order], 1).gather(1, pos[:, :k])
    return values.to(out_dtype(corpus.dtype)), order


def search_mistakes(queries, corpus, k, *, eps=1e-8, chunk_size=None):
    found = {}
    if chunk_size is not None:  # first: with chunk_size 1 it is also ties to the higher index
        found[LATER_CHUNK] = search(queries, corpus, k, eps=eps, chunk_size=chunk_size)
    found |= {
        DOT: search(queries, corpus, k, eps=eps, how="none"),
        HIGHER: search(queries, corpus, k, eps=eps, ties="higher"),
        EPS_ADDED: search(queries, corpus, k, eps=eps, how="added"),
        NO_EPS: search(queries, corpus, k, eps=eps, how="plain"),
    }
    if corpus.dtype in (torch.float16, torch.bfloat16):
        half = F.normalize(queries, dim=-1, eps=eps) @ F.normalize(corpus, dim=-1, eps=eps).T
        values, order = torch.sort(half, dim=-1, descending=True, stable=True)
        found[HALF] = (values[:, :k].float(), order[:, :k])
    return found


def check_search(got, queries, corpus, k, *, eps=1e-8, chunk_size=None, what="cosine_top_k", exact=False):
    """`got` against the oracle. `exact`: crafted inputs whose cosines are exact in any order of
    summation, where ties are real and the indices must be the oracle's. Otherwise (random inputs)
    the scores must match, and every index must point at a row with the score of its rank (two rows
    whose cosines differ by less than rounding may come in either order)."""
    expected = search(queries, corpus, k, eps=eps)
    expect(
        isinstance(got, tuple | list) and len(got) == 2 and all(isinstance(t, torch.Tensor) for t in got),
        f"{what} must return a tuple of two tensors (scores, indices)",
    )
    scores, indices = got
    n_q = queries.shape[0]
    expect(
        tuple(scores.shape) == (n_q, k) and tuple(indices.shape) == (n_q, k),
        f"the scores and indices of {what} must both have shape (Q, k)",
        detail=f"got {tuple(scores.shape)} and {tuple(indices.shape)}",
    )
    dtype = out_dtype(corpus.dtype)
    expect(
        scores.dtype == dtype and indices.dtype == torch.int64,
        f"the scores of {what} must be {str(dtype).removeprefix('torch.')} here and the indices int64",
        detail=f"got {scores.dtype} and {indices.dtype}",
        hint=DTYPE_HINT,
    )
    expect(
        not torch.isnan(scores).any(),
        f"the scores of {what} hold NaN values",
        hint=NAN if bool((corpus == 0).all(-1).any() or (queries == 0).all(-1).any()) else "",
    )
    mistakes = search_mistakes(queries, corpus, k, eps=eps, chunk_size=chunk_size)
    if exact:
        assert_close(got, expected, what=what, misconceptions=mistakes)
        return
    assert_close(
        scores,
        expected[0],
        what=f"the scores of {what}",
        misconceptions={label: wrong[0] for label, wrong in mistakes.items()},
    )
    full = unit(queries, eps) @ unit(corpus, eps).T
    in_range = bool(((indices >= 0) & (indices < corpus.shape[0])).all())
    distinct = all(len(set(row)) == k for row in indices.tolist())
    if in_range and distinct:
        at = full.gather(1, indices).to(dtype)
        if torch.allclose(at, expected[0], rtol=1.3e-6, atol=1e-5):
            return
    assert_close(got, expected, what=what, misconceptions=mistakes)  # fails: names the mistake


def randn(rng, *shape, dtype=torch.float32):
    return torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).to(dtype)


def dyadic(rng, n, d=16, *, pool=6, zero_rows=()):
    """n rows drawn from `pool` directions whose entries are 0 or +-1 with 1, 4 or 16 non-zeros
    (lengths 1, 2, 4), each row scaled by 1, 2 or 4. Normalised entries are 0, +-1, +-1/2 or +-1/4,
    so every cosine is a sum of multiples of 1/16, exact in any order of summation (float16
    included): rows of one direction tie exactly, whatever their length."""
    base = torch.zeros(pool, d)
    for j in range(pool):
        nonzero = (1, 4, 16)[j % 3]
        where = rng.choice(d, size=nonzero, replace=False)
        base[j, where] = torch.from_numpy(rng.choice([-1.0, 1.0], size=nonzero).astype(np.float32))
    rows = base[torch.from_numpy(rng.integers(0, pool, size=n))]
    rows = rows * torch.from_numpy(rng.choice([1.0, 2.0, 4.0], size=(n, 1)).astype(np.float32))
    for r in zero_rows:
        rows[r] = 0.0
    return rows


# ---------------------------------------------------------------------------- cosine_top_k

CHUNKS = [
    pytest.param(16, id="chunk-divides-N"),
    pytest.param(23, id="chunk-does-not-divide-N"),
    pytest.param(1, id="chunk-1"),
    pytest.param(500, id="chunk-larger-than-N"),
]


@pytest.mark.parametrize("chunk_size", CHUNKS)
def test_random_against_torch(submission, seed, chunk_size):
    """Random queries and corpus rows against F.normalize, a matrix product and a stable sort (float64)."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        queries = randn(rng, sizes["queries"], sizes["dim"])
        corpus = randn(rng, sizes["rows"], sizes["dim"]) * 3.0
        k = min(sizes["k"], sizes["rows"])
        got = submission.cosine_top_k(queries, corpus, k, chunk_size=chunk_size)
        check_search(
            got, queries, corpus, k, chunk_size=chunk_size, what=f"cosine_top_k(..., chunk_size={chunk_size})"
        )

    shrink(
        check,
        {"queries": 5, "rows": 160, "dim": 24, "k": 7},
        seed=seed,
        minimum={"queries": 1, "rows": 2, "dim": 2, "k": 1},
        budget=12,
    )


TIE_CHUNKS = [
    pytest.param(1, id="chunk-1"),
    pytest.param(3, id="chunk-3"),
    pytest.param(7, id="chunk-7"),
    pytest.param(16, id="chunk-16"),
    pytest.param(100, id="chunk-larger-than-N"),
]


@pytest.mark.parametrize("chunk_size", TIE_CHUNKS)
def test_ties_inside_and_across_chunks(submission, rng, chunk_size):
    """A corpus of 48 rows in 6 directions (each row scaled by 1, 2 or 4): cosines tie exactly, inside
    chunks and across their boundaries; equal scores go to the lower index."""
    corpus = dyadic(rng, 48)
    queries = torch.cat([corpus[[5, 17, 30]] * 0.5, dyadic(rng, 3)])
    got = submission.cosine_top_k(queries, corpus, 12, chunk_size=chunk_size)
    check_search(
        got,
        queries,
        corpus,
        12,
        chunk_size=chunk_size,
        what=f"cosine_top_k(..., chunk_size={chunk_size})",
        exact=True,
    )


def test_k_equals_n(submission, rng):
    """k = N returns the whole corpus, sorted, ties to the lower index."""
    corpus = dyadic(rng, 20, pool=4)
    queries = dyadic(rng, 2, pool=4)
    got = submission.cosine_top_k(queries, corpus, 20, chunk_size=6)
    check_search(got, queries, corpus, 20, chunk_size=6, what="cosine_top_k(..., k=N)", exact=True)


def test_zero_vectors(submission, rng):
    """Zero rows in the corpus and a zero query: cosine 0 with everything, never NaN."""
    corpus = dyadic(rng, 30, zero_rows=(0, 4, 13, 29))
    queries = torch.cat([torch.zeros(1, 16), dyadic(rng, 3)])
    got = submission.cosine_top_k(queries, corpus, 10, chunk_size=8)
    check_search(got, queries, corpus, 10, chunk_size=8, what="cosine_top_k with zero vectors", exact=True)


@pytest.mark.parametrize("eps", [pytest.param(0.5, id="eps-0.5"), pytest.param(1e-3, id="eps-1e-3")])
def test_eps_is_a_floor(submission, rng, eps):
    """Vectors shorter than eps are divided by eps, not by their length: x / max(||x||, eps)."""
    lengths = torch.from_numpy(rng.choice([1e-4, 1e-3, 0.02, 0.2, 0.7, 3.0], size=(40, 1)).astype(np.float32))
    corpus = F.normalize(randn(rng, 40, 8), dim=-1) * lengths
    queries = F.normalize(randn(rng, 4, 8), dim=-1) * torch.tensor([[0.3], [1.0], [2e-4], [5.0]])
    got = submission.cosine_top_k(queries, corpus, 6, chunk_size=9, eps=eps)
    check_search(got, queries, corpus, 6, eps=eps, chunk_size=9, what=f"cosine_top_k(..., eps={eps:g})")


@pytest.mark.parametrize(
    "dtype",
    [
        pytest.param(torch.float16, id="float16"),
        pytest.param(torch.bfloat16, id="bfloat16"),
        pytest.param(torch.float64, id="float64"),
    ],
)
def test_dtypes(submission, rng, dtype):
    """float16 and bfloat16 inputs give float32 scores computed in float32; float64 stays float64."""
    queries = randn(rng, 4, 32, dtype=dtype)
    corpus = randn(rng, 90, 32, dtype=dtype)
    got = submission.cosine_top_k(queries, corpus, 8, chunk_size=32)
    check_search(got, queries, corpus, 8, chunk_size=32, what=f"cosine_top_k on {str(dtype)[6:]} inputs")


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float16, id="float16"), pytest.param(torch.bfloat16, id="bfloat16")]
)
def test_half_precision_ties(submission, rng, dtype):
    """Exact ties in float16 / bfloat16 inputs still go to the lower index."""
    corpus = dyadic(rng, 40).to(dtype)
    queries = dyadic(rng, 3).to(dtype)
    got = submission.cosine_top_k(queries, corpus, 9, chunk_size=6)
    check_search(
        got, queries, corpus, 9, chunk_size=6, what=f"cosine_top_k on {str(dtype)[6:]} inputs", exact=True
    )


@pytest.mark.parametrize(
    "k, chunk_size",
    [
        pytest.param(0, 4, id="k-0"),
        pytest.param(11, 4, id="k-greater-than-N"),
        pytest.param(3, 0, id="chunk_size-0"),
    ],
)
def test_invalid_arguments(submission, rng, k, chunk_size):
    """k outside 1 .. N, or chunk_size below 1, raises ValueError."""
    queries, corpus = randn(rng, 2, 4), randn(rng, 10, 4)
    try:
        submission.cosine_top_k(queries, corpus, k, chunk_size=chunk_size)
    except ValueError:
        return
    pytest.fail(
        f"cosine_top_k(queries, corpus of 10 rows, k={k}, chunk_size={chunk_size}) must raise ValueError"
    )


@pytest.mark.parametrize(
    "dtype", [pytest.param(torch.float32, id="float32"), pytest.param(torch.float16, id="float16")]
)
def test_inputs_unchanged(submission, rng, dtype):
    """cosine_top_k leaves queries and corpus as they were (the caller keeps its embeddings)."""
    # Only the inputs are checked here: the values are checked by test_random_against_torch and
    # test_dtypes.
    queries = randn(rng, 3, 12, dtype=dtype) * 2.0
    corpus = randn(rng, 50, 12, dtype=dtype) * 2.0
    call_unchanged(
        submission.cosine_top_k,
        queries,
        corpus,
        5,
        names=("queries", "corpus"),
        what="cosine_top_k",
        hint="normalise into new tensors (F.normalize, or x / norm): never x /= ..., x.div_(...) or another "
        "in-place operation on the inputs (x.float() is x itself when x is float32)",
        chunk_size=16,
    )


# ---------------------------------------------------------------------------- MMR


def mmr_oracle(
    query,
    candidates,
    k,
    lam,
    *,
    eps=1e-8,
    how="floor",
    red="max",
    reverse=False,
    first="relevance",
    ties="lower",
):
    """Maximal marginal relevance in float64 (and its likely mistakes): the picks, as a list."""
    c = unit(candidates, eps, how)
    rel = c @ unit(query[None], eps, how)[0]
    sim = c @ c.T
    a, b = (1 - lam, lam) if reverse else (lam, 1 - lam)

    def best(values, allowed):
        items = [i for i in range(len(values)) if allowed[i]]
        top = max(float(values[i]) for i in items)
        tied = [i for i in items if float(values[i]) == top]
        return tied[0] if ties == "lower" else tied[-1]

    allowed = [True] * len(c)
    if first == "relevance":
        picks = [best(rel, allowed)]
    else:  # the MMR score with an empty redundancy term
        picks = [best(a * rel, allowed)]
    allowed[picks[0]] = False
    while len(picks) < k:
        if red == "max":
            redundancy = sim[:, picks].max(dim=1).values
        elif red == "min":
            redundancy = sim[:, picks].min(dim=1).values
        else:  # "query": the selected candidates' relevance
            redundancy = rel[picks].max().expand(len(c))
        pick = best(a * rel - b * redundancy, allowed)
        picks.append(pick)
        allowed[pick] = False
    return picks


def mmr_mistakes(query, candidates, k, lam, eps=1e-8):
    return {
        MMR_MIN: mmr_oracle(query, candidates, k, lam, eps=eps, red="min"),
        MMR_RELEVANCE: mmr_oracle(query, candidates, k, 1.0, eps=eps),
        MMR_REVERSED: mmr_oracle(query, candidates, k, lam, eps=eps, reverse=True),
        MMR_QUERY: mmr_oracle(query, candidates, k, lam, eps=eps, red="query"),
        MMR_DOT: mmr_oracle(query, candidates, k, lam, eps=eps, how="none"),
        MMR_FIRST: mmr_oracle(query, candidates, k, lam, eps=eps, first="mmr"),
        MMR_HIGHER: mmr_oracle(query, candidates, k, lam, eps=eps, ties="higher"),
    }


def check_mmr(got, query, candidates, k, lam, *, eps=1e-8, what="mmr", exact=False):
    """`got` against the greedy selection. `exact`: crafted inputs with exact ties, where the picks
    must be the oracle's. Otherwise (random inputs) every pick must have the largest MMR score given
    the picks before it, up to rounding (two candidates within rounding may come in either order)."""
    expect(isinstance(got, torch.Tensor), f"{what} must return a torch.Tensor")
    expect(got.dtype == torch.int64, f"{what} must return torch.int64 indices", detail=f"got {got.dtype}")
    expect(
        tuple(got.shape) == (k,), f"{what} must return k indices, shape (k,)", detail=f"{tuple(got.shape)}"
    )
    picks = got.tolist()
    want = mmr_oracle(query, candidates, k, lam, eps=eps)
    if picks == want:
        return
    hint = next(
        (label for label, wrong in mmr_mistakes(query, candidates, k, lam, eps).items() if picks == wrong), ""
    )
    valid = len(set(picks)) == k and all(0 <= p < len(candidates) for p in picks)
    if not exact and valid:
        c = unit(candidates, eps)
        rel = c @ unit(query[None], eps)[0]
        sim = c @ c.T
        ok = float(rel[picks[0]]) >= float(rel.max()) - 1e-5
        for t in range(1, k):
            score = lam * rel - (1 - lam) * sim[:, picks[:t]].max(dim=1).values
            score[picks[:t]] = float("-inf")
            ok = ok and float(score[picks[t]]) >= float(score.max()) - 1e-5
        if ok:
            return
    expect(
        False,
        f"{what} did not select the candidates that maximal marginal relevance selects, in its order",
        detail=f"got {picks}, expected {want}",
        hint=hint,
    )


LAMBDAS = [
    pytest.param(0.0, id="lambda-0"),
    pytest.param(0.3, id="lambda-0.3"),
    pytest.param(0.5, id="lambda-0.5"),
    pytest.param(0.7, id="lambda-0.7"),
    pytest.param(1.0, id="lambda-1"),
]


@pytest.mark.parametrize("lam", LAMBDAS)
def test_mmr_random(submission, seed, lam):
    """MMR on random candidates (clusters of near-duplicates around a few directions)."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        centres = randn(rng, sizes["clusters"], sizes["dim"])
        which = torch.from_numpy(rng.integers(0, sizes["clusters"], size=sizes["candidates"]))
        candidates = centres[which] + 0.3 * randn(rng, sizes["candidates"], sizes["dim"])
        query = randn(rng, sizes["dim"])
        k = min(sizes["k"], sizes["candidates"])
        got = submission.mmr(query, candidates, k, lambda_=lam)
        check_mmr(got, query, candidates, k, lam, what=f"mmr(..., lambda_={lam})")

    shrink(
        check,
        {"candidates": 20, "clusters": 4, "dim": 12, "k": 8},
        seed=seed,
        minimum={"candidates": 2, "clusters": 1, "dim": 2, "k": 2},
        budget=12,
    )


@pytest.mark.parametrize(
    "lam",
    [
        pytest.param(0.25, id="lambda-0.25"),
        pytest.param(0.5, id="lambda-0.5"),
        pytest.param(0.75, id="lambda-0.75"),
        pytest.param(0.0, id="lambda-0"),
    ],
)
def test_mmr_ties(submission, rng, lam):
    """Candidates in a few directions, each several times (and a zero vector): exact ties in the
    first pick and later ones go to the lower index."""
    candidates = dyadic(rng, 18, pool=5, zero_rows=(6,))
    # a copy of one candidate's direction, or a direction of its own: every cosine is exact
    query = candidates[9] * 2.0 if lam <= 0.5 else dyadic(rng, 1, pool=3)[0]
    got = submission.mmr(query, candidates, 10, lambda_=lam)
    check_mmr(got, query, candidates, 10, lam, what=f"mmr(..., lambda_={lam})", exact=True)


def test_mmr_dtypes(submission, rng):
    """float16 and float64 candidates: int64 picks, the cosines computed as for cosine_top_k."""
    for dtype in (torch.float16, torch.float64):
        centres = randn(rng, 3, 16)
        candidates = (centres[torch.from_numpy(rng.integers(0, 3, size=15))] + 0.2 * randn(rng, 15, 16)).to(
            dtype
        )
        query = randn(rng, 16, dtype=dtype)
        got = submission.mmr(query, candidates, 6, lambda_=0.6)
        check_mmr(got, query, candidates, 6, 0.6, what=f"mmr on {str(dtype)[6:]} inputs")


def test_mmr_k_equals_m(submission, rng):
    """k = M orders every candidate; k = 0 and k = M + 1 raise ValueError."""
    candidates = randn(rng, 7, 5)
    query = randn(rng, 5)
    check_mmr(
        submission.mmr(query, candidates, 7, lambda_=0.5), query, candidates, 7, 0.5, what="mmr(..., k=M)"
    )
    for k in (0, 8):
        try:
            submission.mmr(query, candidates, k, lambda_=0.5)
        except ValueError:
            continue
        pytest.fail(f"mmr(query, 7 candidates, k={k}) must raise ValueError")


def test_mmr_inputs_unchanged(submission, rng):
    """mmr leaves query and candidates as they were."""
    # Only the inputs are checked here: the values are checked by test_mmr_random.
    query, candidates = randn(rng, 8) * 2.0, randn(rng, 12, 8) * 2.0
    call_unchanged(
        submission.mmr,
        query,
        candidates,
        5,
        names=("query", "candidates"),
        what="mmr",
        hint="normalise into new tensors: never an in-place operation on the inputs",
        lambda_=0.5,
    )


# ---------------------------------------------------------------------------- memory

PERF_QUERIES, PERF_DIM, PERF_K, PERF_CHUNK = 64, 32, 5, 256


def perf_call(rng, n):
    queries = torch.from_numpy(rng.standard_normal((PERF_QUERIES, PERF_DIM)).astype(np.float32))
    corpus = torch.from_numpy(rng.standard_normal((n, PERF_DIM)).astype(np.float32))
    return Call("cosine_top_k", queries, corpus, PERF_K, chunk_size=PERF_CHUNK)


def scores_only(actual, expected):
    """The measured calls' scores (two rows whose cosines differ by less than rounding may swap
    indices; the correctness tests check indices)."""
    assert_close(actual[0], expected[0], what="the scores of a measured call", rtol=1.3e-6, atol=1e-5)


@pytest.mark.performance
def test_memory_does_not_grow_with_the_corpus(perf):
    """The largest tensor one call allocates stays the same as the corpus grows (Q = 64, chunk_size = 256)."""
    perf.scaling(
        "memory",
        perf_call,
        check=scores_only,
        hint="the largest tensor one call allocated grew with the number of corpus rows N: allocate at "
        "most about Q x (k + chunk_size), chunk_size x D and Q x D elements (no Q x N score matrix, no "
        "normalised or converted copy of the whole corpus)",
    )
