"""BM25 and reciprocal rank fusion: a sparse scorer and a rank-only way to merge result lists.

Fill in the three functions below. Read README.md first: it explains every convention used here.
"""

import math  # noqa: F401  (math.log is the natural log)
from collections import Counter  # noqa: F401


def bm25_idf(df: int, n_docs: int) -> float:
    """Lucene's BM25 idf of a term found in `df` of `n_docs` documents.

        idf = ln(1 + (n_docs - df + 0.5) / (df + 0.5))      (natural log; positive for 0 <= df <= n_docs)

    Not the classic ln((N - df + 0.5) / (df + 0.5)), which goes negative for common terms.
    Returns a Python float. Raises ValueError unless 0 <= df <= n_docs.

    Example: bm25_idf(2, 3) = ln(1.6) = 0.470004; bm25_idf(3, 3) = ln(8/7) = 0.133531.
    """
    raise NotImplementedError("bm25_idf: ln(1 + (N - df + 0.5) / (df + 0.5))")


def bm25_scores(query: list[str], docs: list[list[str]], *, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """The Okapi BM25 score of every document for `query`, as a list of floats in the order of `docs`.

    query: a list of tokens (strings). Every occurrence counts: a term repeated in the query adds
        its contribution again (do not deduplicate).
    docs: the corpus, each document a list of tokens (strings), already tokenised: compare tokens
        exactly as given.

        score(D) = sum over the query's tokens t of
                   idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))

        tf    = occurrences of t in D (a term with tf = 0 contributes 0: skip it)
        dl    = len(D)                       avgdl = sum of len(D) over all docs / len(docs)
        idf   = bm25_idf(df(t), len(docs)),  df(t) = number of docs containing t at least once

    avgdl and N count every document, empty ones included. Keep the (k1 + 1) factor (Lucene 8+
    drops it; this exercise does not). An empty query gives all zeros, an empty corpus gives [].

    k1 >= 0 and 0 <= b <= 1, or ValueError. Compute with Python floats (double precision).
    Leave query and docs (and every document list) unchanged.
    """
    raise NotImplementedError("bm25_scores: score every document for the query")


def rrf(rankings: list[list], *, k: float = 60) -> list[tuple]:
    """Reciprocal rank fusion of several rankings (Cormack, Clarke and Buettcher, 2009).

    rankings: a list of rankings, each a list of distinct doc ids (all str, or all int), best first.

        rrf(d) = sum over the rankings containing d of 1 / (k + rank),   rank = 1 for the first id

    A document missing from a ranking gets nothing from that ranking. Accumulate the scores ranking
    by ranking, in the order given, starting from 0.0.

    Returns [(doc_id, score), ...] as a list of tuples, one per document found in any ranking,
    sorted by score descending; equal scores are ordered by doc_id ascending (integer ids by value:
    2 before 10, not as text). No rankings (or only empty ones) gives [].

    Raises ValueError when k < 0, or when a ranking lists the same id twice.
    Leave rankings (and every ranking list) unchanged.

    Example: rrf([["D0", "D1", "D2"], ["D2", "D0", "D3"]])
        == [("D0", 1/61 + 1/62), ("D2", 1/63 + 1/61), ("D1", 1/62), ("D3", 1/63)]
    """
    raise NotImplementedError("rrf: fuse the rankings by reciprocal rank")
