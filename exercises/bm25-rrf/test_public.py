"""Public tests: the worked examples of the lesson, and small cases you can check by hand.

Run them with `grader test bm25-rrf bm25_rrf.py`.
"""

import math

import pytest

from grader.testing import assert_close, expect

TOL = {"rtol": 1e-9, "atol": 1e-12}
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
TIES_NOT_BY_ID = "documents with equal scores were not ordered by doc id ascending"
MISSING_PENALISED = (
    "a document missing from a ranking was given a score from it: it gets nothing from that ranking"
)

DOCS = [
    ["the", "cat", "sat", "on", "the", "mat"],  # dl = 6
    ["cat", "naps"],  # dl = 2
    ["the", "dog", "sat", "down"],  # dl = 4; avgdl = 12 / 3 = 4
]
IDF = math.log(1.6)  # "the" and "cat" are both in 2 of the 3 documents


def test_idf_values(submission):
    """bm25_idf(2, 3) = ln(1.6); a term in every document still has a positive idf, ln(8/7)."""
    got = [submission.bm25_idf(2, 3), submission.bm25_idf(3, 3), submission.bm25_idf(0, 10)]
    assert_close(
        got,
        [math.log(1.6), math.log(8 / 7), math.log(22.0)],
        what="[bm25_idf(2, 3), bm25_idf(3, 3), bm25_idf(0, 10)]",
        **TOL,
        misconceptions={CLASSIC_IDF: [math.log(0.6), math.log(1 / 7), math.log(21.0)]},
    )


def test_worked_example(submission):
    """The lesson's example: query ["the", "cat"], k1 = 1.2, b = 0.75 gives 0.956771, 0.590862, 0.470004."""
    expected = [IDF * (4.4 / 3.65 + 2.2 / 2.65), IDF * 2.2 / 1.75, IDF * 1.0]
    got = submission.bm25_scores(["the", "cat"], DOCS)
    expect(isinstance(got, list), "bm25_scores must return a list of floats, one per document")
    classic = math.log(0.6)
    assert_close(
        got,
        expected,
        what='bm25_scores(["the", "cat"], docs)',
        **TOL,
        misconceptions={
            CLASSIC_IDF: [s / IDF * classic for s in expected],
            NO_K1_PLUS_1: [s / 2.2 for s in expected],
            LENGTH_INVERTED: [IDF * (4.4 / 2.9 + 2.2 / 1.9), IDF * 2.2 / 3.1, IDF * 1.0],
        },
    )


def test_repeated_query_term(submission):
    """The query ["the", "cat", "cat"] adds cat's contribution twice."""
    once = [IDF * (4.4 / 3.65 + 2.2 / 2.65), IDF * 2.2 / 1.75, IDF]
    twice = [IDF * (4.4 / 3.65 + 2 * 2.2 / 2.65), IDF * 2 * 2.2 / 1.75, IDF]
    assert_close(
        submission.bm25_scores(["the", "cat", "cat"], DOCS),
        twice,
        what='bm25_scores(["the", "cat", "cat"], docs)',
        **TOL,
        misconceptions={
            QUERY_DEDUPLICATED: once,
            CLASSIC_IDF: [x / IDF * math.log(0.6) for x in twice],
            NO_K1_PLUS_1: [IDF * (4.4 / 3.65 + 2 * 2.2 / 2.65) / 2.2, IDF * 2 / 1.75, IDF / 2.2],
        },
    )


def test_k1_zero_counts_each_term_once(submission):
    """k1 = 0: the tf part is 1 for any tf > 0, so a document scores the sum of the idfs it matches."""
    assert_close(
        submission.bm25_scores(["the", "cat"], DOCS, k1=0.0),
        [2 * IDF, IDF, IDF],
        what='bm25_scores(["the", "cat"], docs, k1=0)',
        **TOL,
        misconceptions={CLASSIC_IDF: [2 * math.log(0.6), math.log(0.6), math.log(0.6)]},
    )


def test_unknown_term_and_empty_query(submission):
    """A term found in no document adds 0; an empty query scores 0 everywhere."""
    assert_close(
        submission.bm25_scores(["zebra"], DOCS), [0.0, 0.0, 0.0], what='bm25_scores(["zebra"], docs)', **TOL
    )
    assert_close(submission.bm25_scores([], DOCS), [0.0, 0.0, 0.0], what="bm25_scores([], docs)", **TOL)


def test_rrf_worked_example(submission):
    """The lesson's fusion of a BM25 and a dense ranking, k = 60."""
    got = submission.rrf([["D0", "D1", "D2"], ["D2", "D0", "D3"]])
    expected = [("D0", 1 / 61 + 1 / 62), ("D2", 1 / 63 + 1 / 61), ("D1", 1 / 62), ("D3", 1 / 63)]
    assert_close(
        got,
        expected,
        what='rrf([["D0", "D1", "D2"], ["D2", "D0", "D3"]])',
        **TOL,
        misconceptions={
            RANKS_FROM_0: [("D0", 1 / 60 + 1 / 61), ("D2", 1 / 62 + 1 / 60), ("D1", 1 / 61), ("D3", 1 / 62)],
            MISSING_PENALISED: [
                ("D0", 1 / 61 + 1 / 62),
                ("D2", 1 / 63 + 1 / 61),
                ("D1", 1 / 62 + 1 / 64),
                ("D3", 1 / 64 + 1 / 63),
            ],
        },
    )


def test_rrf_ties_by_id(submission):
    """Equal scores are ordered by doc id ascending: a before b, 1 before 2."""
    s, s0 = 1 / 61 + 1 / 62, 1 / 60 + 1 / 61
    for rankings, (x, y) in (([["b", "a"], ["a", "b"]], ("a", "b")), ([[2, 1], [1, 2]], (1, 2))):
        assert_close(
            submission.rrf(rankings),
            [(x, s), (y, s)],
            **TOL,
            what=f"rrf({rankings})",
            misconceptions={
                TIES_NOT_BY_ID: [(y, s), (x, s)],
                RANKS_FROM_0: [(x, s0), (y, s0)],
            },
        )


def test_rrf_k_zero(submission):
    """k = 0 gives 1 / rank: the top document of one list scores 1."""
    assert_close(
        submission.rrf([["x", "y"]], k=0), [("x", 1.0), ("y", 0.5)], what='rrf([["x", "y"]], k=0)', **TOL
    )


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.bm25_idf(4, 3), id="idf-df-above-n"),
        pytest.param(lambda s: s.bm25_scores(["cat"], DOCS, k1=-0.5), id="negative-k1"),
        pytest.param(lambda s: s.bm25_scores(["cat"], DOCS, b=1.5), id="b-above-1"),
        pytest.param(lambda s: s.rrf([["a"]], k=-1), id="negative-k"),
        pytest.param(lambda s: s.rrf([["a", "b", "a"]]), id="ranking-with-a-repeat"),
    ],
)
def test_invalid_arguments_raise_value_error(submission, call):
    """Out-of-range parameters and a ranking that repeats an id raise ValueError."""
    with pytest.raises(ValueError):
        call(submission)
