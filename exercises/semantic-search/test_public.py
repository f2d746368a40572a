"""Public tests: the worked examples of the lesson and small cases you can check by hand.

Run them with `grader test semantic-search semantic_search.py`.
"""

import pytest
import torch

from grader.testing import assert_close, expect

QUERY = torch.tensor([[1.0, 1.0]])
CORPUS = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0], [0.0, 0.0], [2.0, 0.0], [-1.0, 1.0]])
R = 0.5**0.5  # cos 45 degrees


def test_worked_example(submission):
    """q = [1, 1] against six rows: scores [0.9899, 0.7071, 0.7071] at rows [2, 0, 1] (rows 0, 1
    and 4 tie; the lower indices win)."""
    got = submission.cosine_top_k(QUERY, CORPUS, 3)
    assert_close(
        got,
        (torch.tensor([[1.4 * R, R, R]]), torch.tensor([[2, 0, 1]])),
        what="cosine_top_k(q, corpus, k=3)",
        misconceptions={
            "the output matches ranking by the raw dot product: normalise queries and corpus rows to length "
            "1 first": (torch.tensor([[7.0, 2.0, 2.0]]), torch.tensor([[2, 1, 4]])),
            "the output matches ties broken towards the higher index: among equal scores the lower corpus "
            "index comes first (a stable descending sort)": (
                torch.tensor([[1.4 * R, R, R]]),
                torch.tensor([[2, 4, 1]]),
            ),
        },
    )


def test_worked_example_in_chunks_of_two(submission):
    """The same search with chunk_size = 2 (chunks {0, 1}, {2, 3}, {4, 5}) gives the same answer."""
    got = submission.cosine_top_k(QUERY, CORPUS, 3, chunk_size=2)
    assert_close(
        got,
        (torch.tensor([[1.4 * R, R, R]]), torch.tensor([[2, 0, 1]])),
        what="cosine_top_k(q, corpus, k=3, chunk_size=2)",
        misconceptions={
            "the output matches ties across chunk boundaries going to the later chunk: put the running "
            "best before the new chunk's scores and sort stably": (
                torch.tensor([[1.4 * R, R, R]]),
                torch.tensor([[2, 4, 0]]),
            ),
        },
    )


def test_zero_vector_scores_zero(submission):
    """A zero query has cosine 0 with every row: scores of 0 (not NaN), ties to rows 0, 1, 2."""
    got = submission.cosine_top_k(torch.zeros(1, 2), CORPUS, 3)
    assert_close(
        got,
        (torch.zeros(1, 3), torch.tensor([[0, 1, 2]])),
        what="cosine_top_k(zero query, corpus, k=3)",
        hint="normalise as F.normalize does, x / max(||x||, eps): a zero vector stays zero, and its "
        "cosine with everything is 0",
    )


def test_shapes_and_dtypes(submission):
    """Two queries, ten rows, k = 4: scores (2, 4) float32, indices (2, 4) int64, scores descending."""
    g = torch.Generator().manual_seed(0)
    queries, corpus = torch.randn(2, 5, generator=g), torch.randn(10, 5, generator=g)
    scores, indices = submission.cosine_top_k(queries, corpus, 4)
    expect(tuple(scores.shape) == (2, 4), "scores must have shape (Q, k) = (2, 4)", detail=f"{scores.shape}")
    expect(
        tuple(indices.shape) == (2, 4), "indices must have shape (Q, k) = (2, 4)", detail=f"{indices.shape}"
    )
    expect(scores.dtype == torch.float32, "float32 inputs give float32 scores", detail=f"{scores.dtype}")
    expect(indices.dtype == torch.int64, "indices must be torch.int64", detail=f"{indices.dtype}")
    expect(bool((scores[:, :-1] >= scores[:, 1:]).all()), "scores must be in descending order")
    want = torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(corpus, dim=-1).T
    assert_close(scores, want.gather(1, indices), what="the scores at the returned indices")


@pytest.mark.parametrize("chunk_size", [1, 3, 10, 64])
def test_chunk_size_does_not_change_the_answer(submission, chunk_size):
    """Three queries against 10 rows, k = 4: chunk sizes 1, 3 (not dividing 10), 10 and 64 (more
    than N) all give the answer of a single chunk."""
    g = torch.Generator().manual_seed(1)
    queries, corpus = torch.randn(3, 6, generator=g), torch.randn(10, 6, generator=g)
    want = torch.nn.functional.normalize(queries, dim=-1) @ torch.nn.functional.normalize(corpus, dim=-1).T
    values, order = torch.sort(want, dim=1, descending=True, stable=True)
    got = submission.cosine_top_k(queries, corpus, 4, chunk_size=chunk_size)
    assert_close(got, (values[:, :4], order[:, :4]), what=f"cosine_top_k(..., k=4, chunk_size={chunk_size})")


def test_k_larger_than_the_corpus(submission):
    """k = 7 with a corpus of 6 rows raises ValueError."""
    with pytest.raises(ValueError):
        submission.cosine_top_k(QUERY, CORPUS, 7)


MMR_QUERY = torch.tensor([1.0, 0.0])
MMR_CANDIDATES = torch.tensor([[4.0, 3.0], [4.0, 3.0], [3.0, -4.0], [0.0, 1.0], [1.0, 1.0]])


def test_mmr_worked_example(submission):
    """The lesson's MMR example: lambda_ = 0.5, k = 3 picks [0, 2, 1] (the top 3 by relevance are
    [0, 1, 4])."""
    got = submission.mmr(MMR_QUERY, MMR_CANDIDATES, 3, lambda_=0.5)
    expect(isinstance(got, torch.Tensor), "mmr must return a torch.Tensor")
    expect(got.dtype == torch.int64, "mmr must return torch.int64 indices", detail=f"{got.dtype}")
    assert_close(
        got,
        torch.tensor([0, 2, 1]),
        what="mmr(q, candidates, k=3, lambda_=0.5)",
        misconceptions={
            "the picks match the smallest similarity to the selected set: the redundancy term is the "
            "largest cosine with any selected candidate": torch.tensor([0, 2, 4]),
            "the picks match ranking by relevance alone: subtract (1 - lambda_) times the largest cosine "
            "with the selected candidates": torch.tensor([0, 1, 4]),
        },
    )


def test_mmr_lambda_one_is_relevance_order(submission):
    """lambda_ = 1 is pure relevance: the picks are the cosine top-k order, [0, 1, 4]."""
    got = submission.mmr(MMR_QUERY, MMR_CANDIDATES, 3, lambda_=1.0)
    assert_close(
        got,
        torch.tensor([0, 1, 4]),
        what="mmr(q, candidates, k=3, lambda_=1.0)",
        hint="lambda_ weighs relevance: with lambda_ = 1 the redundancy term has weight 0",
    )
