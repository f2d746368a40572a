"""Public tests: the worked example of the README and a few small cases by hand.

Run them with `grader test paged-kv-cache paged_kv_cache.py`.
"""

import pytest
import torch

from grader.testing import assert_close, expect

H, D = 2, 3  # heads, head dim

EAGER_FORK = "fork copied the parent's blocks? A fork shares them: the child's table holds the same ids"
NO_COW = (
    "the append wrote into a shared block? Copy-on-write: a partially filled last block with a reference "
    "count above 1 is copied to a new block first"
)
FREE_SHARED = (
    "free() released a block another sequence still holds? Free a block only when its count reaches 0"
)
BLOCK_PER_APPEND = "a new block on every append? Fill the free slots of the last block first"
PHYSICAL_ORDER = "gathered in the order of the physical block ids? Follow the block table's order"
EXTRA_BLOCK = (
    "one block too many? A sequence of `length` tokens holds ceil(length / block_size) blocks: a block "
    "is allocated only when a token has no room in the last one"
)


def tokens(start, n):
    """n tokens whose keys are start, start + 1, ... (every entry) and whose values are their negatives."""
    ids = torch.arange(start, start + n, dtype=torch.float32)
    k = ids.reshape(n, 1, 1).expand(n, H, D).clone()
    return k, -k


def check_table(cache, seq, expected, what, misconceptions=None, hint=""):
    assert_close(
        cache.call("block_table", seq), expected, what=what, misconceptions=misconceptions, hint=hint
    )


def check_free(cache, expected, what, hint=""):
    got = cache.call("num_free_blocks")
    expect(got == expected, f"{what}: num_free_blocks() is {got}; expected {expected}", hint=hint)


def test_new_cache(submission):
    """A new cache: zero pools of shape (num_blocks, block_size, n_heads, head_dim), every block free."""
    cache = submission.PagedKVCache(8, 4, H, D)
    for name in ("k_pool", "v_pool"):
        assert_close(cache.attr(name), torch.zeros(8, 4, H, D), what=name)
    check_free(cache, 8, "a new cache of 8 blocks")
    expect(cache.call("ref_count", 5) == 0, "ref_count(5) of a new cache is not 0")
    cache.call("add_sequence", "A")
    check_table(cache, "A", [], "the table of a new sequence", hint="no block until the first token comes")
    expect(cache.call("seq_len", "A") == 0, "seq_len of a new sequence is not 0")


def test_last_block_filled_first(submission):
    """block_size 4: 3 tokens use block 0, one more fills it exactly, the 5th token takes block 1."""
    cache = submission.PagedKVCache(8, 4, H, D)
    cache.call("add_sequence", 0)
    cache.call("append", 0, *tokens(0, 3))
    check_table(cache, 0, [0], "the table after 3 tokens")
    cache.call("append", 0, *tokens(3, 1))
    check_table(
        cache,
        0,
        [0],
        "the table after 4 tokens (block 0 exactly full)",
        misconceptions={BLOCK_PER_APPEND: [0, 1], EXTRA_BLOCK: [0, 1]},
    )
    check_free(cache, 7, "after 4 tokens in blocks of 4", hint=EXTRA_BLOCK)
    cache.call("append", 0, *tokens(4, 1))
    check_table(cache, 0, [0, 1], "the table after 5 tokens", misconceptions={BLOCK_PER_APPEND: [0, 1, 2]})
    keys, values = cache.call("gather", 0)
    k, v = tokens(0, 5)
    assert_close(keys, k, what="the keys gathered")
    assert_close(values, v, what="the values gathered")


def test_worked_example(submission):
    """The README's example step by step: tables, reference counts, free counts and gathered tokens."""
    cache = submission.PagedKVCache(8, 4, H, D)
    cache.call("add_sequence", "A")
    cache.call("append", "A", *tokens(0, 6))
    check_table(cache, "A", [0, 1], "A's table after 6 tokens", misconceptions={EXTRA_BLOCK: [0, 1, 2]})
    cache.call("add_sequence", "B")
    cache.call("append", "B", *tokens(100, 3))
    check_table(cache, "B", [2], "B's table after 3 tokens")
    check_free(cache, 5, "after A (6 tokens) and B (3 tokens)")

    cache.call("fork", "A", "C")
    check_table(cache, "C", [0, 1], "C's table after fork(A, C)", misconceptions={EAGER_FORK: [3, 4]})
    check_free(cache, 5, "after fork(A, C)", hint="a fork allocates nothing: it shares the parent's blocks")
    expect(
        [cache.call("ref_count", b) for b in (0, 1, 2)] == [2, 2, 1],
        "after fork(A, C) the reference counts of blocks 0, 1, 2 are not 2, 2, 1",
        hint="a fork adds one reference to each of the parent's blocks",
    )

    cache.call("append", "C", *tokens(200, 1))
    check_table(cache, "C", [0, 3], "C's table after its first append", misconceptions={NO_COW: [0, 1]})
    expect(
        [cache.call("ref_count", b) for b in (0, 1, 3)] == [2, 1, 1],
        "after copy-on-write the reference counts of blocks 0, 1, 3 are not 2, 1, 1",
        hint="the copy takes one reference away from the shared block",
    )
    check_free(cache, 4, "after the copy-on-write")
    k_a, v_a = tokens(0, 6)
    keys, _ = cache.call("gather", "A")
    assert_close(keys, k_a, what="A's keys after C's append", hint="C's new token must not reach A")

    cache.call("append", "A", *tokens(6, 1))
    cache.call("append", "A", *tokens(7, 2))
    check_table(
        cache, "A", [0, 1, 4], "A's table after 9 tokens", misconceptions={BLOCK_PER_APPEND: [0, 1, 4, 5, 6]}
    )
    check_free(cache, 3, "after A's 9 tokens")

    cache.call("free", "A")
    check_free(cache, 5, "after free(A)", hint=FREE_SHARED)
    expect(
        cache.call("ref_count", 0) == 1,
        "after free(A) block 0 (still C's) does not have 1 reference",
        hint=FREE_SHARED,
    )

    cache.call("append", "B", *tokens(103, 2))
    check_table(cache, "B", [2, 1], "B's table after 2 more tokens", misconceptions={FREE_SHARED: [2, 0]})
    k_b, v_b = tokens(100, 5)
    keys, values = cache.call("gather", "B")
    # physical order: block 1 (B's token 4, then A's old tokens 5, 6, 7 left in its slots), block 2
    mixed = torch.cat([k_b[4:5], tokens(5, 3)[0], k_b[:1]])
    assert_close(keys, k_b, what="B's keys (table [2, 1])", misconceptions={PHYSICAL_ORDER: mixed})
    assert_close(values, v_b, what="B's values (table [2, 1])", misconceptions={PHYSICAL_ORDER: -mixed})
    keys, values = cache.call("gather", "C")
    k_c = torch.cat([k_a, tokens(200, 1)[0]])
    assert_close(
        keys,
        k_c,
        what="C's keys (A's first 6 tokens, then its own)",
        misconceptions={NO_COW: torch.cat([k_a, tokens(6, 1)[0]])},
    )
    assert_close(values, -k_c, what="C's values")


def test_out_of_blocks_raises_runtime_error(submission):
    """2 blocks of 2 tokens hold 4 tokens: appending 5 raises RuntimeError."""
    cache = submission.PagedKVCache(2, 2, H, D)
    cache.call("add_sequence", 0)
    with pytest.raises(RuntimeError):
        cache.call("append", 0, *tokens(0, 5))


def test_unknown_sequence_raises_key_error(submission):
    """An id that was never added (or was freed) raises KeyError."""
    cache = submission.PagedKVCache(4, 2, H, D)
    with pytest.raises(KeyError):
        cache.call("append", 7, *tokens(0, 1))
    cache.call("add_sequence", 7)
    cache.call("free", 7)
    with pytest.raises(KeyError):
        cache.call("gather", 7)
