# expect: failed
# why: treats the nonlinearity as something to apply once the partial results are combined: sums
#   the ranks' linear partial outputs and applies GeLU to the total, instead of applying GeLU to
#   each rank's slice of the hidden activations before the second linear
# caught-by: test_mlp_worked_example, test_mlp_random
import torch
import torch.nn.functional as F


def shard_mlp(
    w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, n: int
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Split an MLP's weights over n ranks: w1 and b1 by output features, w2 by input features."""
    w1_shards = [s.clone() for s in torch.tensor_split(w1, n, dim=0)]
    b1_shards = [s.clone() for s in torch.tensor_split(b1, n, dim=0)]
    w2_shards = [s.clone() for s in torch.tensor_split(w2, n, dim=1)]
    return w1_shards, b1_shards, w2_shards


def tensor_parallel_mlp(
    x: torch.Tensor,
    w1_shards: list[torch.Tensor],
    b1_shards: list[torch.Tensor],
    w2_shards: list[torch.Tensor],
    b2: torch.Tensor,
) -> torch.Tensor:
    """linear(gelu(linear(x, w1, b1)), w2, b2), computed shard by shard and summed."""
    partials = []
    for w1_r, b1_r, w2_r in zip(w1_shards, b1_shards, w2_shards, strict=True):
        h_r = F.linear(x, w1_r, b1_r)  # this rank's slice of the hidden activations
        partials.append(F.linear(h_r, w2_r))  # a partial output, no bias
    out = partials[0]
    for p in partials[1:]:
        out = out + p  # the all-reduce
    return F.gelu(out) + b2


class RingRank:
    """One rank of a ring all-reduce: reduce-scatter for n - 1 steps, then all-gather for n - 1."""

    def __init__(self, rank: int, n: int, tensor: torch.Tensor) -> None:
        self.rank = rank
        self.n = n
        self.buffer = tensor.clone()
        self.chunks = list(torch.tensor_split(self.buffer, n))  # views into self.buffer

    def _send_index(self, step: int) -> int:
        if step < self.n - 1:
            return (self.rank - step) % self.n
        return (self.rank + 1 - (step - (self.n - 1))) % self.n

    def send(self, step: int) -> torch.Tensor:
        return self.chunks[self._send_index(step)].clone()

    def receive(self, step: int, chunk: torch.Tensor) -> None:
        if step < self.n - 1:
            self.chunks[(self.rank - 1 - step) % self.n] += chunk
        else:
            self.chunks[(self.rank - (step - (self.n - 1))) % self.n].copy_(chunk)

    def result(self) -> torch.Tensor:
        return self.buffer.clone()
