# expect: failed
# why: Lucene 8's form, tf / (tf + k1 * (...)) without the (k1 + 1) factor: the same ranking, but
#   every score is too small by that factor, where the (k1 + 1) form was asked for
# caught-by: test_worked_example, test_random_corpora, test_saturation_and_length

import math
from collections import Counter


def bm25_idf(df: int, n_docs: int) -> float:
    """Lucene's BM25 idf: ln(1 + (N - df + 0.5) / (df + 0.5)), positive for every 0 <= df <= N."""
    if n_docs < 0 or not 0 <= df <= n_docs:
        raise ValueError(f"need 0 <= df <= n_docs, got df={df}, n_docs={n_docs}")
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


def bm25_scores(query: list[str], docs: list[list[str]], *, k1: float = 1.2, b: float = 0.75) -> list[float]:
    """The BM25 score of every document for the query, in the order of `docs`."""
    if k1 < 0:
        raise ValueError(f"k1 must be >= 0, got {k1}")
    if not 0 <= b <= 1:
        raise ValueError(f"b must be in [0, 1], got {b}")
    n = len(docs)
    if n == 0:
        return []
    counts = [Counter(doc) for doc in docs]  # term frequencies, one Counter per document
    lengths = [len(doc) for doc in docs]  # dl: every token counts, repeats included
    avgdl = sum(lengths) / n  # over ALL documents, empty ones included
    df = Counter()
    for tf in counts:
        df.update(tf.keys())  # each document counts once per term it contains

    scores = [0.0] * n
    for term in query:  # a term repeated in the query adds its contribution again
        if df[term] == 0:
            continue  # absent from the corpus: contributes 0
        idf = bm25_idf(df[term], n)
        for i, tf_i in enumerate(counts):
            tf = tf_i[term]
            if tf == 0:
                continue  # a term missing from a document contributes 0 (and avoids avgdl = 0)
            norm = k1 * (1.0 - b + b * lengths[i] / avgdl)
            scores[i] += idf * tf / (tf + norm)
    return scores


def rrf(rankings: list[list], *, k: float = 60) -> list[tuple]:
    """Reciprocal rank fusion: [(doc_id, score), ...] by score descending, ties by doc_id ascending."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    scores: dict = {}
    for ranking in rankings:  # accumulate ranking by ranking, in the order given
        if len(set(ranking)) != len(ranking):
            raise ValueError("a ranking lists the same document twice")
        for rank, doc in enumerate(ranking, start=1):  # ranks start at 1
            scores[doc] = scores.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
