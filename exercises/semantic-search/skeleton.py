"""Semantic search: cosine top-k over an embedding matrix, in chunks, and MMR re-ranking.

Fill in `cosine_top_k` and `mmr` below. Read README.md first: it explains every convention used
here.
"""

import torch


def cosine_top_k(
    queries: torch.Tensor, corpus: torch.Tensor, k: int, chunk_size: int = 1024, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query, the k corpus rows with the largest cosine similarity, best first.

    queries: (Q, D); corpus: (N, D), the same floating dtype. Returns (scores, indices), both
    (Q, k): scores in descending order, indices (torch.int64) the corpus rows they belong to.
    Equal scores: the LOWER corpus index comes first (and makes it into the top k first).

    Cosine: every vector normalised as torch.nn.functional.normalize(x, dim=-1, eps=eps) does,
    x / max(||x||, eps); a zero vector has cosine 0 with everything (never NaN).

    Chunks: scan the corpus chunk_size rows at a time (rows 0 .. chunk_size - 1, then the next
    chunk_size, ...; the last chunk may be shorter), normalising and scoring one chunk at a time
    and merging it into a running best k per query. The result must not depend on chunk_size.
    Memory: no tensor may grow with N (no Q x N score matrix, no normalised or converted copy of
    the whole corpus); about Q x (k + chunk_size), chunk_size x D and Q x D elements are fine.

    Dtypes: float16 / bfloat16 inputs are computed in float32 and the scores returned as float32;
    float32 stays float32, float64 stays float64.

    Raise ValueError unless 1 <= k <= N and chunk_size >= 1. Leave the inputs unchanged.
    Not allowed: torch.nn.functional.cosine_similarity, torch.nn.CosineSimilarity.
    """
    raise NotImplementedError("cosine_top_k: scan the corpus in chunks and keep the best k per query")


def mmr(
    query: torch.Tensor, candidates: torch.Tensor, k: int, lambda_: float = 0.5, eps: float = 1e-8
) -> torch.Tensor:
    """Maximal marginal relevance (Carbonell and Goldstein, 1998): k candidate indices, in the
    order they are selected, as a torch.int64 tensor of shape (k,).

    query: (D,); candidates: (M, D). Cosines as in cosine_top_k (normalised with eps; float32 for
    float16 / bfloat16 / float32 inputs, float64 for float64).

    1. The first pick is the most relevant candidate: argmax_i cos(query, d_i), whatever lambda_.
    2. Each further pick, among the candidates not yet selected, maximises
           lambda_ * cos(query, d_i) - (1 - lambda_) * max over selected s of cos(d_i, d_s)
    3. Ties, in every pick, go to the lower candidate index.

    lambda_ = 1 is pure relevance (the cosine top-k order); lambda_ = 0 is pure variety after the
    first pick. Raise ValueError unless 1 <= k <= M. Leave the inputs unchanged.
    """
    raise NotImplementedError("mmr: pick the most relevant first, then maximise the MMR score greedily")
