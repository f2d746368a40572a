"""A paged KV cache: a pool of fixed-size blocks, block tables, reference counts, copy-on-write.

Fill in the PagedKVCache class below. Read README.md first: it explains every convention used here.
Keep `fill_cache` at the end of the file as it is: the grader's memory check calls it.
"""

from collections.abc import Hashable

import torch


class PagedKVCache:
    """The keys and values of many sequences, stored in one pool of fixed-size blocks.

    Attributes (the tests read them by these names):
        k_pool, v_pool  tensors of shape (num_blocks, block_size, n_heads, head_dim) and dtype
                        `dtype`, allocated once in __init__ (zeros) and never replaced or resized:
                        token t of a sequence with block table T lives at k_pool[T[t // block_size],
                        t % block_size] (and the same place of v_pool).
        num_blocks, block_size, n_heads, head_dim, dtype   as given.

    Conventions (all tested):
        - A seq_id is any hashable key chosen by the caller (the tests use ints and strings).
        - Allocation always takes the free block with the LOWEST id.
        - A sequence holds exactly ceil(length / block_size) blocks: a block is allocated only when
          a token has no room in the sequence's last block; an empty sequence holds none.
        - Errors: an unknown seq_id raises KeyError; adding or forking into an id that exists
          raises ValueError; k or v of the wrong shape raises ValueError; an append that needs
          more blocks than are free raises RuntimeError and leaves the cache exactly as it was.
    """

    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        n_heads: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        """Allocate the two pools (zeros), with every block free (reference count 0)."""
        raise NotImplementedError("PagedKVCache.__init__: allocate the pools and the free list")

    def add_sequence(self, seq_id: Hashable) -> None:
        """Register an empty sequence (length 0, no block). ValueError if seq_id already exists."""
        raise NotImplementedError("add_sequence: an empty block table")

    def append(self, seq_id: Hashable, k: torch.Tensor, v: torch.Tensor) -> None:
        """Append n tokens: k and v of shape (n, n_heads, head_dim), n >= 0 (n = 0 changes nothing).

        Fill the free slots of the sequence's last block first, then allocate new blocks (lowest
        free id first) for the rest. Copy-on-write: when the last block is partially filled and
        shared (reference count > 1), first allocate a new block (before any other new block),
        copy the filled slots of keys and values into it, put it in place of the shared block in
        this sequence's table and drop one reference from the shared block; then write. A full
        shared block is never written to, so it is never copied. Values are stored in the cache's
        dtype. If the blocks needed (the copy included) are more than the free ones, raise
        RuntimeError before changing anything. k and v are left as they were.
        """
        raise NotImplementedError("append: write into the last block, then into new blocks")

    def gather(self, seq_id: Hashable) -> tuple[torch.Tensor, torch.Tensor]:
        """(K, V): new tensors of shape (length, n_heads, head_dim) in the cache's dtype, the
        sequence's tokens in logical order (the order of its block table); (0, n_heads, head_dim)
        for an empty sequence."""
        raise NotImplementedError("gather: read the blocks in the order of the block table")

    def free(self, seq_id: Hashable) -> None:
        """Remove the sequence: drop one reference from each of its blocks; a block whose count
        reaches 0 is free again (other sequences may still hold it)."""
        raise NotImplementedError("free: drop the sequence's references")

    def fork(self, parent_id: Hashable, child_id: Hashable) -> None:
        """Make child_id a copy of parent_id that shares all its blocks: the child's table is a
        copy of the parent's list, every block gains one reference, no block is allocated or
        copied. KeyError if parent_id is unknown, ValueError if child_id already exists."""
        raise NotImplementedError("fork: share the parent's blocks")

    def block_table(self, seq_id: Hashable) -> list[int]:
        """A new list of the physical block ids (Python ints) of the sequence, in logical order."""
        raise NotImplementedError("block_table")

    def seq_len(self, seq_id: Hashable) -> int:
        """The number of tokens of the sequence."""
        raise NotImplementedError("seq_len")

    def num_free_blocks(self) -> int:
        """How many blocks no sequence holds."""
        raise NotImplementedError("num_free_blocks")

    def ref_count(self, block_id: int) -> int:
        """How many block tables hold block_id (0 for a free block). IndexError outside
        0 .. num_blocks - 1."""
        raise NotImplementedError("ref_count")


# ------------------------------------------------------------------------------------------
# Given: leave this function as it is. The grader's memory check calls it to measure what
# add_sequence and append allocate.


def fill_cache(cache: PagedKVCache, lengths: list[int]) -> None:
    """Add sequences 0, 1, ... to `cache` (which holds none yet), with lengths[i] tokens each (all ones)."""
    for seq_id, n in enumerate(lengths):
        cache.add_sequence(seq_id)
        ones = torch.ones(n, cache.n_heads, cache.head_dim)
        cache.append(seq_id, ones, ones)
