# expect: failed
# why: gather reads the sequence's blocks in the order of their physical ids (sorted), not in the
#   order of the block table; the same as long as tables only grow upwards
# caught-by: test_worked_example, test_gather_follows_the_table

import torch


class PagedKVCache:
    """Keys and values of many sequences in one pool of fixed-size blocks (see README.md)."""

    def __init__(
        self,
        num_blocks: int,
        block_size: int,
        n_heads: int,
        head_dim: int,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if num_blocks < 1 or block_size < 1 or n_heads < 1 or head_dim < 1:
            raise ValueError("num_blocks, block_size, n_heads and head_dim must be positive")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.n_heads = n_heads
        self.head_dim = head_dim
        self.dtype = dtype
        shape = (num_blocks, block_size, n_heads, head_dim)
        self.k_pool = torch.zeros(shape, dtype=dtype)  # allocated once, never resized
        self.v_pool = torch.zeros(shape, dtype=dtype)
        self._refs = [0] * num_blocks  # how many block tables hold each block; 0 = free
        self._free = set(range(num_blocks))
        self._tables: dict[int, list[int]] = {}
        self._lengths: dict[int, int] = {}

    # ------------------------------------------------------------------ blocks

    def _allocate(self) -> int:
        block = min(self._free)  # the lowest free block id first
        self._free.remove(block)
        self._refs[block] = 1
        return block

    def _release(self, block: int) -> None:
        self._refs[block] -= 1
        if self._refs[block] == 0:
            self._free.add(block)

    def _table(self, seq_id: int) -> list[int]:
        if seq_id not in self._tables:
            raise KeyError(seq_id)
        return self._tables[seq_id]

    # ------------------------------------------------------------------ sequences

    def add_sequence(self, seq_id: int) -> None:
        if seq_id in self._tables:
            raise ValueError(f"sequence {seq_id} already exists")
        self._tables[seq_id] = []  # no block until the first token arrives
        self._lengths[seq_id] = 0

    def append(self, seq_id: int, k: torch.Tensor, v: torch.Tensor) -> None:
        table = self._table(seq_id)
        n = k.shape[0]
        expected = (n, self.n_heads, self.head_dim)
        if tuple(k.shape) != expected or tuple(v.shape) != expected:
            raise ValueError(f"k and v must have shape (n_tokens, {self.n_heads}, {self.head_dim})")
        if n == 0:
            return
        bs = self.block_size
        length = self._lengths[seq_id]
        filled = length % bs  # tokens in the last block; 0 when it is full (or there is none)
        shared_tail = filled > 0 and self._refs[table[-1]] > 1
        new_blocks = -(-(length + n) // bs) - len(table)  # ceil((length + n) / bs) - blocks held
        needed = new_blocks + (1 if shared_tail else 0)
        if needed > len(self._free):
            raise RuntimeError(f"out of blocks: {needed} needed, {len(self._free)} free")

        if shared_tail:  # copy-on-write: the first write into a shared block copies it first
            old = table[-1]
            new = self._allocate()
            self.k_pool[new, :filled] = self.k_pool[old, :filled]
            self.v_pool[new, :filled] = self.v_pool[old, :filled]
            self._release(old)
            table[-1] = new
        for _ in range(new_blocks):
            table.append(self._allocate())

        done = 0
        while done < n:  # fill the last block, then the new ones, a block-sized slice at a time
            pos = length + done
            block, offset = table[pos // bs], pos % bs
            take = min(bs - offset, n - done)
            self.k_pool[block, offset : offset + take] = k[done : done + take]
            self.v_pool[block, offset : offset + take] = v[done : done + take]
            done += take
        self._lengths[seq_id] = length + n

    def gather(self, seq_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        table = self._table(seq_id)
        length = self._lengths[seq_id]
        index = torch.tensor(sorted(table), dtype=torch.long)
        shape = (-1, self.n_heads, self.head_dim)
        keys = self.k_pool.index_select(0, index).reshape(shape)[:length]
        values = self.v_pool.index_select(0, index).reshape(shape)[:length]
        return keys, values

    def free(self, seq_id: int) -> None:
        table = self._table(seq_id)
        for block in table:
            self._release(block)  # back to the free list only when no other table holds it
        del self._tables[seq_id], self._lengths[seq_id]

    def fork(self, parent_id: int, child_id: int) -> None:
        table = self._table(parent_id)
        if child_id in self._tables:
            raise ValueError(f"sequence {child_id} already exists")
        for block in table:
            self._refs[block] += 1  # shared, not copied
        self._tables[child_id] = list(table)
        self._lengths[child_id] = self._lengths[parent_id]

    # ------------------------------------------------------------------ views

    def block_table(self, seq_id: int) -> list[int]:
        return list(self._table(seq_id))

    def seq_len(self, seq_id: int) -> int:
        self._table(seq_id)
        return self._lengths[seq_id]

    def num_free_blocks(self) -> int:
        return len(self._free)

    def ref_count(self, block_id: int) -> int:
        if not 0 <= block_id < self.num_blocks:
            raise IndexError(block_id)
        return self._refs[block_id]


# ------------------------------------------------------------------------------------------
# Given: leave this function as it is. The grader's memory check calls it to measure what
# add_sequence and append allocate.


def fill_cache(cache: PagedKVCache, lengths: list[int]) -> None:
    """Add sequences 0, 1, ... to `cache` (which holds none yet), with lengths[i] tokens each (all ones)."""
    for seq_id, n in enumerate(lengths):
        cache.add_sequence(seq_id)
        ones = torch.ones(n, cache.n_heads, cache.head_dim)
        cache.append(seq_id, ones, ones)
