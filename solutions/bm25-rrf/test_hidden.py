"""Hidden tests for bm25-rrf: BM25 scores on random corpora against an independent float64 oracle
written here (Lucene's idf, the (k1 + 1) form, exact lengths), for several k1 and b; common,
repeated and unknown terms, empty documents; RRF on random rankings against exact fractions; and
arguments left unchanged.

The oracle is this file's own code, not the reference solution: the maintained implementations
(Lucene's BM25Similarity, rank_bm25) are not installed, and differ from the pinned conventions
anyway (Lucene 8+ drops (k1 + 1) and rounds lengths; rank_bm25 uses the classic idf with a floor).
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from grader.testing import assert_close, call_unchanged, compare, expect, shrink

TOL = {"rtol": 1e-9, "atol": 1e-12}

# one wording per mistake, the same as in the public tests
CLASSIC_IDF = (
    "the idf is the classic ln((N - df + 0.5) / (df + 0.5)), without the 1 +: "
    "use ln(1 + (N - df + 0.5) / (df + 0.5))"
)
NO_K1_PLUS_1 = "the scores lack the (k1 + 1) factor in the numerator (Lucene 8's form): keep it"
LENGTH_INVERTED = "the length factor used avgdl / dl: it is 1 - b + b * dl / avgdl"
QUERY_DEDUPLICATED = (
    "a repeated query term was counted once: every occurrence in the query adds its contribution"
)
RANKS_FROM_0 = "the ranks started at 0: the first document of a ranking has rank 1, so it scores 1 / (k + 1)"
MISSING_PENALISED = (
    "a document missing from a ranking was given a score from it: it gets nothing from that ranking"
)
AVGDL_NONEMPTY = (
    "avgdl left out the empty documents: it is the total length divided by N, empty documents included"
)
N_NONEMPTY = "N (in the idf) left out the empty documents: it counts every document, empty ones included"
BOTH_NONEMPTY = "N and avgdl left out the empty documents: both count every document, empty ones included"
AVGDL_DISTINCT = "dl and avgdl counted distinct terms: they count tokens, repeats included"
AVGDL_WITH_TERM = "avgdl was taken over the documents that contain the term: it is over all documents"
TIES_NOT_BY_ID = "documents with equal scores were not ordered by doc id ascending"
TIES_AS_TEXT = (
    "integer doc ids with equal scores were ordered as text (10 before 2): compare the ids themselves"
)
SAME_HERE = "the output matches mistakes that agree on this case, one of: "
ASCENDING = "the fused list is sorted by score ascending: the best document (largest score) comes first"
LOWERCASED = "the tokens were lower-cased: compare them exactly as given"
WRONG_K = "the scores match k = 60 whatever k was passed: use the k argument"


# ---------------------------------------------------------------------------- the oracle


def bm25_oracle(
    query,
    docs,
    k1=1.2,
    b=0.75,
    *,
    idf_form="lucene",
    k1_plus_1=True,
    length="dl/avgdl",
    dedup=False,
    population="all",
):
    """BM25 in float64, written independently of the reference; the keyword arguments give the
    outputs of the usual mistakes. A list of floats, one per document."""
    n_all = len(docs)
    if n_all == 0:
        return []
    nonempty = [d for d in docs if d]
    n, avgdl = n_all, sum(len(d) for d in docs) / n_all
    if population in ("nonempty", "n-nonempty"):
        n = len(nonempty)
    if population in ("nonempty", "avgdl-nonempty"):
        avgdl = sum(map(len, nonempty)) / len(nonempty) if nonempty else 0.0
    if population == "distinct":
        avgdl = sum(len(set(d)) for d in docs) / n_all
    terms = list(dict.fromkeys(query)) if dedup else list(query)
    out = []
    for doc in docs:
        dl = len(set(doc)) if population == "distinct" else len(doc)
        total = 0.0
        for t in terms:
            tf = doc.count(t)
            if tf == 0:
                continue
            df = sum(1 for d in docs if t in d)
            ratio = (n - df + 0.5) / (df + 0.5)
            idf = math.log(1.0 + ratio) if idf_form == "lucene" else math.log(ratio)
            avg = avgdl
            if population == "with-term":
                avg = sum(len(d) for d in docs if t in d) / df
            rel = dl / avg if length == "dl/avgdl" else avg / dl
            num = tf * (k1 + 1.0) if k1_plus_1 else tf
            total += idf * num / (tf + k1 * (1.0 - b + b * rel))
        out.append(total)
    return out


def observed(found):
    """The misconceptions of `found`, where those that give the same output on this case are named
    together: a hint then says only what the output matches, not which of them was made."""
    groups = []  # [labels, output]
    for label, output in found.items():
        for group in groups:
            try:
                same = compare(output, group[1], **TOL) is None
            except Exception:
                same = False
            if same:
                group[0].append(label)
                break
        else:
            groups.append([[label], output])
    return {
        labels[0] if len(labels) == 1 else SAME_HERE + "; or ".join(labels): output
        for labels, output in groups
    }


def bm25_mistakes(query, docs, k1=1.2, b=0.75):
    """What the likely mistakes score, to name the one a submission made."""
    found = {
        CLASSIC_IDF: bm25_oracle(query, docs, k1, b, idf_form="classic"),
        NO_K1_PLUS_1: bm25_oracle(query, docs, k1, b, k1_plus_1=False),
        LENGTH_INVERTED: bm25_oracle(query, docs, k1, b, length="avgdl/dl"),
        QUERY_DEDUPLICATED: bm25_oracle(query, docs, k1, b, dedup=True),
        AVGDL_DISTINCT: bm25_oracle(query, docs, k1, b, population="distinct"),
        AVGDL_WITH_TERM: bm25_oracle(query, docs, k1, b, population="with-term"),
    }
    if any(not d for d in docs) and any(docs):
        found[AVGDL_NONEMPTY] = bm25_oracle(query, docs, k1, b, population="avgdl-nonempty")
        found[N_NONEMPTY] = bm25_oracle(query, docs, k1, b, population="n-nonempty")
        found[BOTH_NONEMPTY] = bm25_oracle(query, docs, k1, b, population="nonempty")
    return observed(found)


def rrf_oracle(rankings, k=60, *, start=1, missing=None, order="id", reverse=False):
    """RRF with floats accumulated ranking by ranking (the pinned order), ties by id; the keyword
    arguments give the outputs of the usual mistakes. Checked against exact fractions."""
    scores, exact = {}, {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, start=start):
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
            exact[doc] = exact.get(doc, Fraction(0)) + 1 / (Fraction(k) + rank)
    if missing is not None:  # a penalty rank len(ranking) + 1 for every document not in a ranking
        for ranking in rankings:
            present = set(ranking)
            for doc in scores:
                if doc not in present:
                    scores[doc] += 1.0 / (k + len(ranking) + 1)
    elif start == 1:
        for doc, value in scores.items():  # the float scores are the exact ones, rounded
            assert math.isclose(value, float(exact[doc]), rel_tol=1e-12)
    items = list(scores.items())
    if order == "id":
        items.sort(key=lambda item: (-item[1], item[0]))
    elif order == "text":  # ties by the ids' text: 10 before 2
        items.sort(key=lambda item: (-item[1], str(item[0])))
    else:  # by score only, equal scores in the order first seen
        items.sort(key=lambda item: -item[1])
    if reverse:
        items.reverse()
    return items


def rrf_mistakes(rankings, k=60):
    found = {
        MISSING_PENALISED: rrf_oracle(rankings, k, missing="penalty"),
        TIES_NOT_BY_ID: rrf_oracle(rankings, k, order="first-seen"),
        ASCENDING: rrf_oracle(rankings, k, reverse=True),
    }
    if k > 0:  # with k = 0, ranks from 0 divide by zero
        found[RANKS_FROM_0] = rrf_oracle(rankings, k, start=0)
    if k != 60:
        found[WRONG_K] = rrf_oracle(rankings, 60)
    if any(isinstance(d, int) for ranking in rankings for d in ranking):
        found[TIES_AS_TEXT] = rrf_oracle(rankings, k, order="text")
    return observed(found)


# ---------------------------------------------------------------------------- generated inputs


def corpus(rng, n_docs, vocab, mean_len):
    """Documents of Zipf-distributed tokens w0, w1, ...; about one in eight is empty."""
    p = 1.0 / np.arange(1, vocab + 1)
    p /= p.sum()
    docs = []
    for _ in range(n_docs):
        length = 0 if rng.random() < 0.125 else int(rng.integers(1, 2 * mean_len))
        docs.append([f"w{i}" for i in rng.choice(vocab, size=length, p=p)])
    return docs


def query_for(rng, vocab, n_terms):
    """Random query tokens, the first one repeated, and a term no document contains."""
    terms = [f"w{i}" for i in rng.integers(0, vocab, size=n_terms)]
    return [*terms, terms[0], "unseen-term"]


PARAMS = [
    pytest.param(1.2, 0.75, id="k1-1.2-b-0.75"),
    pytest.param(0.0, 0.75, id="k1-0"),
    pytest.param(1.2, 0.0, id="b-0"),
    pytest.param(1.2, 1.0, id="b-1"),
    pytest.param(2.0, 0.3, id="k1-2-b-0.3"),
    pytest.param(0.5, 0.9, id="k1-0.5-b-0.9"),
]


@pytest.mark.parametrize("k1, b", PARAMS)
def test_random_corpora(submission, seed, k1, b):
    """BM25 scores of random corpora (some documents empty) for a random query, several k1 and b."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        docs = corpus(rng, sizes["docs"], sizes["vocab"], mean_len=8)
        query = query_for(rng, sizes["vocab"], sizes["query_terms"])
        assert_close(
            submission.bm25_scores(query, docs, k1=k1, b=b),
            bm25_oracle(query, docs, k1, b),
            what=f"bm25_scores(query, docs, k1={k1}, b={b})",
            **TOL,
            misconceptions=bm25_mistakes(query, docs, k1, b),
        )

    shrink(
        check,
        {"docs": 40, "vocab": 30, "query_terms": 5},
        seed=seed,
        minimum={"docs": 2, "vocab": 2},
        budget=30,
    )


def test_default_parameters(submission, seed):
    """bm25_scores(query, docs) gives the same scores as bm25_scores(query, docs, k1=1.2, b=0.75).

    Only the defaults: the scores themselves are checked by the other tests.
    """
    rng = np.random.default_rng(seed)
    docs = corpus(rng, 25, 20, mean_len=6)
    query = query_for(rng, 20, 4)
    implicit = submission.bm25_scores(query, docs)
    explicit = submission.bm25_scores(query, docs, k1=1.2, b=0.75)
    mismatch = compare(implicit, explicit, **TOL)
    expect(
        mismatch is None,
        "bm25_scores(query, docs) differs from bm25_scores(query, docs, k1=1.2, b=0.75): "
        "the defaults must be k1 = 1.2 and b = 0.75",
        detail=mismatch.describe("bm25_scores(query, docs)", reveal=True) if mismatch else "",
    )


def test_term_in_every_document(submission, rng):
    """A term found in every document has a small positive idf: matching it raises every score."""
    docs = [["the", *doc] for doc in corpus(rng, 12, 15, mean_len=5)]  # "the" is everywhere
    docs[3] = ["the", "the", "the"]
    for query in (["the"], ["the", "w0"], ["w1", "the", "w2"]):
        assert_close(
            submission.bm25_scores(query, docs),
            bm25_oracle(query, docs),
            what="bm25_scores for a query with a term found in every document",
            **TOL,
            misconceptions=bm25_mistakes(query, docs),
        )


def test_idf(submission):
    """bm25_idf(df, n) for every df from 0 to n, for several n (a term in every document included)."""
    for n in (1, 2, 7, 100):
        got = [submission.bm25_idf(df, n) for df in range(n + 1)]
        assert_close(
            got,
            [math.log(1 + (n - df + 0.5) / (df + 0.5)) for df in range(n + 1)],
            what=f"[bm25_idf(df, {n}) for df in 0..{n}]",
            **TOL,
            misconceptions={CLASSIC_IDF: [math.log((n - df + 0.5) / (df + 0.5)) for df in range(n + 1)]},
        )


def test_empty_documents_count_in_avgdl(submission):
    """Empty documents count in avgdl and in N: two empty documents among three."""
    docs = [["a", "b", "a", "c"], [], ["b", "d"], [], ["a", "d", "d", "e", "f", "g"]]
    for query in (["a"], ["a", "d"], ["b", "g", "a"]):
        assert_close(
            submission.bm25_scores(query, docs),
            bm25_oracle(query, docs),
            what="bm25_scores on a corpus with empty documents",
            **TOL,
            misconceptions=bm25_mistakes(query, docs),
        )


@pytest.mark.parametrize(
    "query, docs, expected",
    [
        pytest.param(["a"], [], [], id="no-documents"),
        pytest.param(["a", "b"], [[], [], []], [0.0, 0.0, 0.0], id="only-empty-documents"),
        pytest.param([], [["a"], ["b", "a"]], [0.0, 0.0], id="empty-query"),
        pytest.param(["x", "y"], [["a"], ["b", "a"]], [0.0, 0.0], id="no-query-term-in-the-corpus"),
    ],
)
def test_degenerate_inputs(submission, query, docs, expected):
    """Empty corpus, documents that are all empty, an empty query, a query that matches nothing."""
    assert_close(submission.bm25_scores(query, docs), expected, what="bm25_scores", **TOL)


def test_exact_tokens(submission):
    """Tokens are compared exactly as given: "Cat" and "cat" are different terms."""
    docs = [["Cat", "sat"], ["cat", "cat", "ran"], ["dog"]]
    assert_close(
        submission.bm25_scores(["cat"], docs),
        bm25_oracle(["cat"], docs),
        what='bm25_scores(["cat"], docs)',
        **TOL,
        misconceptions={
            LOWERCASED: bm25_oracle(["cat"], [[t.lower() for t in d] for d in docs]),
            **bm25_mistakes(["cat"], docs),
        },
    )


def test_saturation_and_length(submission):
    """One term repeated 1 to 20 times in documents of lengths 1 to 40, at the lesson's k1 and b."""
    docs = [["t"] * tf + ["pad"] * pad for tf in (1, 2, 5, 20) for pad in (0, 3, 20)] + [["other"]] * 4
    for k1, b in ((1.2, 0.75), (0.0, 0.5), (3.0, 1.0), (1.2, 0.0)):
        assert_close(
            submission.bm25_scores(["t"], docs, k1=k1, b=b),
            bm25_oracle(["t"], docs, k1, b),
            what=f'bm25_scores(["t"], docs, k1={k1}, b={b}) for tf and dl over a grid',
            **TOL,
            misconceptions=bm25_mistakes(["t"], docs, k1, b),
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"k1": -0.01}, id="negative-k1"),
        pytest.param({"b": -0.1}, id="negative-b"),
        pytest.param({"b": 1.01}, id="b-above-1"),
    ],
)
def test_invalid_parameters(submission, kwargs):
    """k1 < 0, or b outside [0, 1], raises ValueError."""
    try:
        submission.bm25_scores(["a"], [["a", "b"], ["b"]], **kwargs)
    except ValueError:
        return
    pytest.fail(f"bm25_scores(..., {', '.join(f'{k}={v}' for k, v in kwargs.items())}) must raise ValueError")


def test_idf_invalid(submission):
    """bm25_idf raises ValueError for df < 0 and for df > n_docs."""
    for df, n in ((-1, 5), (6, 5)):
        try:
            submission.bm25_idf(df, n)
        except ValueError:
            continue
        pytest.fail(f"bm25_idf({df}, {n}) must raise ValueError")


# ---------------------------------------------------------------------------- RRF


def random_rankings(rng, n_rankings, pool, ids="str"):
    """Rankings of random subsets of a pool of ids (lengths 0..pool), each in random order."""
    names = [f"doc{i}" for i in range(pool)] if ids == "str" else [int(i) * 7 + 3 for i in range(pool)]
    out = []
    for _ in range(n_rankings):
        size = int(rng.integers(0, pool + 1))
        out.append([names[i] for i in rng.permutation(pool)[:size]])
    return out


@pytest.mark.parametrize(
    "k",
    [
        pytest.param(60, id="k-60"),
        pytest.param(0, id="k-0"),
        pytest.param(1, id="k-1"),
        pytest.param(10.5, id="k-10.5"),
    ],
)
@pytest.mark.parametrize("ids", [pytest.param("str", id="str-ids"), pytest.param("int", id="int-ids")])
def test_rrf_random(submission, seed, k, ids):
    """RRF of random rankings of different lengths, with string or integer ids, for several k."""

    def check(sizes, seed):
        rng = np.random.default_rng(seed)
        rankings = random_rankings(rng, sizes["rankings"], sizes["pool"], ids)
        assert_close(
            submission.rrf(rankings, k=k),
            rrf_oracle(rankings, k),
            what=f"rrf(rankings, k={k})",
            **TOL,
            misconceptions=rrf_mistakes(rankings, k),
        )

    shrink(check, {"rankings": 4, "pool": 12}, seed=seed, budget=30)


def test_rrf_default_k(submission, seed):
    """rrf(rankings) gives the same result as rrf(rankings, k=60).

    Only the default: the fused lists themselves are checked by the other tests.
    """
    rankings = random_rankings(np.random.default_rng(seed), 3, 10)
    implicit, explicit = submission.rrf(rankings), submission.rrf(rankings, k=60)
    mismatch = compare(implicit, explicit, **TOL)
    expect(
        mismatch is None,
        "rrf(rankings) differs from rrf(rankings, k=60): the default must be k = 60",
        detail=mismatch.describe("rrf(rankings)", reveal=True) if mismatch else "",
    )


def test_rrf_ties(submission):
    """Documents with the same ranks in swapped lists tie, and are ordered by id."""
    rankings = [["e", "c", "a", "d", "b"], ["a", "b", "d", "c", "e"], ["c", "e"]]
    assert_close(
        submission.rrf(rankings),
        rrf_oracle(rankings),
        what="rrf of rankings with ties",
        **TOL,
        misconceptions=rrf_mistakes(rankings),
    )
    swapped = [[30, 10, 20], [20, 10, 30]]
    assert_close(
        submission.rrf(swapped, k=5),
        rrf_oracle(swapped, 5),
        what="rrf of rankings with ties, int ids",
        **TOL,
        misconceptions=rrf_mistakes(swapped, 5),
    )


@pytest.mark.parametrize(
    "rankings, k",
    [
        pytest.param([[2, 10, 5], [10, 2]], 60, id="2-and-10"),
        pytest.param([[9, 10, 100, 2], [10, 9, 2, 100]], 60, id="9-10-100-2"),
        pytest.param([[1000, 31, 5, 200], [31, 1000, 200, 5], [4]], 0, id="five-ids-k-0"),
    ],
)
def test_rrf_integer_id_ties(submission, rankings, k):
    """Integer ids with equal scores are ordered by value: 2 before 10, 9 before 10, 100 after 2."""
    assert_close(
        submission.rrf(rankings, k=k),
        rrf_oracle(rankings, k),
        what="rrf of rankings with ties, integer ids of different lengths",
        **TOL,
        misconceptions=rrf_mistakes(rankings, k),
    )


@pytest.mark.parametrize(
    "rankings",
    [
        pytest.param([], id="no-rankings"),
        pytest.param([[], []], id="empty-rankings"),
        pytest.param([["only"]], id="one-document"),
    ],
)
def test_rrf_small(submission, rankings):
    """No rankings or only empty ones give []; one document in one ranking scores 1 / 61."""
    expected = rrf_oracle(rankings)
    assert_close(submission.rrf(rankings), expected, what="rrf", **TOL)


def test_rrf_one_ranking_keeps_its_order(submission, rng):
    """Fusing a single ranking gives back its order, with scores 1/61, 1/62, ..."""
    ranking = [f"d{i}" for i in rng.permutation(15)]
    expected = [(doc, 1 / (60 + r)) for r, doc in enumerate(ranking, start=1)]
    assert_close(
        submission.rrf([ranking]),
        expected,
        what="rrf of one ranking",
        **TOL,
        misconceptions=rrf_mistakes([ranking]),
    )


def test_rrf_invalid(submission):
    """k < 0, or a ranking that lists the same id twice (in any position), raises ValueError."""
    for rankings, kwargs in (
        ([["a", "b"]], {"k": -0.5}),
        ([["a", "b"], ["c", "d", "e", "c"]], {}),
        ([[1, 2, 3, 1]], {}),
    ):
        try:
            submission.rrf(rankings, **kwargs)
        except ValueError:
            continue
        pytest.fail("rrf must raise ValueError for k < 0 and for a ranking that repeats an id")


# ---------------------------------------------------------------------------- arguments


def test_bm25_leaves_arguments_unchanged(submission, rng):
    """bm25_scores leaves the query, the corpus and every document as they were."""
    docs = corpus(rng, 10, 12, mean_len=6)
    query = ["w3", "w0", "w1", "w0"]
    got = call_unchanged(
        submission.bm25_scores,
        query,
        docs,
        names=("query", "docs"),
        what="bm25_scores",
        hint="count with new objects (Counter(doc), a dict); never sort, extend or rewrite the lists given",
    )
    expect(isinstance(got, list), "bm25_scores must return a list of floats, one per document")


def test_rrf_leaves_arguments_unchanged(submission, rng):
    """rrf leaves the list of rankings and every ranking as they were."""
    rankings = random_rankings(rng, 3, 8)
    got = call_unchanged(
        submission.rrf,
        rankings,
        names=("rankings",),
        what="rrf",
        hint="accumulate into a new dict and sort a new list; never sort or change the rankings given",
    )
    expect(isinstance(got, list), "rrf must return a list of (doc_id, score) tuples")


def test_result_types(submission):
    """bm25_scores returns a list of floats; rrf returns a list of (doc_id, float) tuples."""
    scores = submission.bm25_scores(["a"], [["a"], ["b", "a"]])
    expect(
        isinstance(scores, list) and all(isinstance(s, float) for s in scores),
        "bm25_scores must return a list of Python floats, one per document",
    )
    fused = submission.rrf([["a", "b"]])
    expect(
        isinstance(fused, list) and all(isinstance(p, tuple) and len(p) == 2 for p in fused),
        "rrf must return a list of (doc_id, score) tuples",
    )
