# expect: failed
# why: adds eps to the norm, x / (||x|| + eps), instead of flooring it at eps: zero vectors are
#   fine and ordinary ones too (the public tests pass), but vectors near or below eps in length
#   are scaled differently from F.normalize's x / max(||x||, eps)
# caught-by: test_eps_is_a_floor


import torch


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float16 / bfloat16 / float32 are computed in float32, float64 in float64."""
    return torch.promote_types(dtype, torch.float32)


def _normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """x / max(||x||, eps) row by row, in float32 (float64 for float64): a new tensor."""
    x = x.to(_compute_dtype(x.dtype))
    return x / (x.norm(dim=-1, keepdim=True) + eps)


def cosine_top_k(
    queries: torch.Tensor, corpus: torch.Tensor, k: int, chunk_size: int = 1024, eps: float = 1e-8
) -> tuple[torch.Tensor, torch.Tensor]:
    """The k corpus rows most cosine-similar to each query, scanning the corpus chunk by chunk."""
    n = corpus.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the corpus size {n}, got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    q = _normalize(queries, eps)  # (Q, D)
    best_scores = q.new_empty((q.shape[0], 0))
    best_index = torch.empty((q.shape[0], 0), dtype=torch.long)
    for start in range(0, n, chunk_size):
        block = _normalize(corpus[start : start + chunk_size], eps)  # (C, D)
        scores = q @ block.T  # (Q, C)
        index = torch.arange(start, start + block.shape[0]).expand_as(scores)
        # the running best first: its entries have lower indices than this chunk's, and a stable
        # sort keeps equal scores in that order, so ties go to the lower index
        scores = torch.cat([best_scores, scores], dim=1)
        index = torch.cat([best_index, index], dim=1)
        scores, order = torch.sort(scores, dim=1, descending=True, stable=True)
        best_scores = scores[:, :k]
        best_index = index.gather(1, order[:, :k])
    return best_scores, best_index


def mmr(
    query: torch.Tensor, candidates: torch.Tensor, k: int, lambda_: float = 0.5, eps: float = 1e-8
) -> torch.Tensor:
    """Maximal marginal relevance: k candidate indices, in the order they are selected."""
    m = candidates.shape[0]
    if not 1 <= k <= m:
        raise ValueError(f"k must be between 1 and the number of candidates {m}, got {k}")
    c = _normalize(candidates, eps)  # (M, D)
    relevance = c @ _normalize(query, eps)  # (M,)
    similarity = c @ c.T  # (M, M)
    selected = [int(torch.argmax(relevance))]  # argmax returns the first of equal maxima
    taken = torch.zeros(m, dtype=torch.bool)
    taken[selected[0]] = True
    redundancy = similarity[selected[0]].clone()  # max over the selected, kept up to date
    for _ in range(k - 1):
        score = lambda_ * relevance - (1 - lambda_) * redundancy
        score = score.masked_fill(taken, float("-inf"))
        pick = int(torch.argmax(score))
        selected.append(pick)
        taken[pick] = True
        redundancy = torch.maximum(redundancy, similarity[pick])
    return torch.tensor(selected, dtype=torch.long)
