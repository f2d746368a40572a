"""Tensor parallelism: a Megatron-style sharded MLP, and one rank of a ring all-reduce.

Fill in the functions and the class below. Read README.md first: it pins every convention
(the weight layout, the exact GeLU, how tensors are split, the ring's schedule).
"""

import torch


def shard_mlp(
    w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, n: int
) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Split an MLP's weights over n ranks, Megatron-style.

    Weights are in nn.Linear's (out_features, in_features) layout:
        w1: (H, D), b1: (H,)        the first linear, D -> H
        w2: (D_out, H)              the second linear, H -> D_out (its bias b2 is not sharded)

    The H hidden units are split into n ranges H_0, ..., H_(n-1) as torch.tensor_split(..., n)
    splits H (the first H % n ranks get one more unit; ranks may get none when H < n).
    Returns three lists of n tensors:
        w1_shards[r] = w1[H_r]       rows of w1 (dim 0): column-parallel, by output features
        b1_shards[r] = b1[H_r]
        w2_shards[r] = w2[:, H_r]    columns of w2 (dim 1): row-parallel, by input features

    Leave w1, b1 and w2 as they were.
    """
    raise NotImplementedError("shard_mlp: split w1 and b1 by output features, w2 by input features")


def tensor_parallel_mlp(
    x: torch.Tensor,
    w1_shards: list[torch.Tensor],
    b1_shards: list[torch.Tensor],
    w2_shards: list[torch.Tensor],
    b2: torch.Tensor,
) -> torch.Tensor:
    """The MLP linear(gelu(linear(x, w1, b1)), w2, b2), computed from the n ranks' shards.

    For each rank r (n = len(w1_shards)):
        h_r = gelu(x @ w1_shards[r].T + b1_shards[r])     exact GeLU, on this rank's slice
        p_r = h_r @ w2_shards[r].T                        a partial output, (..., D_out)
    then the all-reduce and the bias, added ONCE:
        y = p_0 + p_1 + ... + p_(n-1) + b2

    x: (..., D) with any number of leading dims (also none); returns (..., D_out) in x's dtype.
    Shards may be empty (0 hidden units). Use differentiable tensor operations (the tests
    backpropagate to x and b2), and leave every input as it was.
    """
    raise NotImplementedError("tensor_parallel_mlp: gelu per rank, partial outputs, sum, then b2 once")


class RingRank:
    """One rank of a ring all-reduce over n ranks (reduce-scatter, then all-gather).

    The tests are the network: they create RingRank(r, n, tensors[r]) for every r, then for each
    step in range(2 * (n - 1)) call send(step) on every rank, and then receive(step, message) on
    every rank r with the message of rank (r - 1) % n. Finally result() on every rank.

    Chunks: torch.tensor_split(buffer, n) (sizes differ by at most one, larger first; may be empty).
    Reduce-scatter, steps s = 0 .. n - 2:
        send chunk (rank - s) % n; receive: ADD the message to chunk (rank - 1 - s) % n.
    All-gather, steps s = n - 1 .. 2n - 3, with k = s - (n - 1):
        send chunk (rank + 1 - k) % n; receive: REPLACE chunk (rank - k) % n with the message.

    A rank uses only its own tensor and the messages it receives: no state shared between ranks.
    """

    def __init__(self, rank: int, n: int, tensor: torch.Tensor) -> None:
        """Rank `rank` of `n`, holding a 1-D tensor (N elements, N may be < n or 0). Work on a copy:
        the caller's tensor must not change."""
        raise NotImplementedError("RingRank.__init__: keep rank, n and a copy of the tensor")

    def send(self, step: int) -> torch.Tensor:
        """The chunk this rank sends to rank (rank + 1) % n at `step`: a 1-D tensor of exactly that
        chunk's size, in the tensor's dtype (the tests count its bytes)."""
        raise NotImplementedError("RingRank.send: return the chunk the schedule names for this step")

    def receive(self, step: int, chunk: torch.Tensor) -> None:
        """Take the chunk rank (rank - 1) % n sent at `step`: add it (reduce-scatter) or write it
        (all-gather) into the chunk of this rank's buffer the schedule names."""
        raise NotImplementedError("RingRank.receive: add or write the chunk the schedule names")

    def result(self) -> torch.Tensor:
        """This rank's whole buffer as it is now (1-D, N elements, the tensor's dtype): after all
        2(n - 1) steps, the element-wise sum of every rank's tensor."""
        raise NotImplementedError("RingRank.result: return the buffer")
