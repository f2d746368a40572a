"""Hidden tests for paged-kv-cache: random programs of appends, forks and frees against a plain
list-of-tensors cache (contents) and the reference (block tables under the pinned allocation
order), the edge cases of the lesson, half-precision caches, errors, and memory."""

import numpy as np
import pytest
import torch

from grader.testing import Call, Setup, assert_close, call_unchanged, dtype_params, expect, shrink

H, D = 2, 3

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
COW_FULL = "copied a shared block that was full? Only a partially filled shared last block is copied"
COW_LATE = "the copy-on-write block allocated after the other new blocks? Allocate the copy first"
NOT_ATOMIC = (
    "an append that raised RuntimeError changed the cache: count the blocks it needs (the copy included) "
    "before allocating any"
)


# ---------------------------------------------------------------------------- oracles


class ListCache:
    """The trusted oracle for contents: every sequence is a list of token chunks."""

    def __init__(self, dtype=torch.float32):
        self.dtype = dtype
        self.seqs = {}

    def add(self, seq):
        self.seqs[seq] = ([], [])

    def append(self, seq, k, v):
        self.seqs[seq][0].append(k.to(self.dtype))
        self.seqs[seq][1].append(v.to(self.dtype))

    def fork(self, parent, child):
        ks, vs = self.seqs[parent]
        self.seqs[child] = (list(ks), list(vs))

    def free(self, seq):
        del self.seqs[seq]

    def gather(self, seq):
        ks, vs = self.seqs[seq]
        empty = torch.zeros(0, H, D, dtype=self.dtype)
        return torch.cat([empty, *ks]), torch.cat([empty, *vs])


def tokens(rng, n, dtype=torch.float32):
    k = torch.from_numpy(rng.standard_normal((n, H, D)).astype(np.float32)).to(dtype)
    v = torch.from_numpy(rng.standard_normal((n, H, D)).astype(np.float32)).to(dtype)
    return k, v


def physical_order(ref, seq):
    """What gathering the blocks in the order of their ids (not the table's) returns."""
    table, length = sorted(ref.block_table(seq)), ref.seq_len(seq)
    index = torch.tensor(table, dtype=torch.long)
    shape = (-1, ref.n_heads, ref.head_dim)
    return (
        ref.k_pool.index_select(0, index).reshape(shape)[:length],
        ref.v_pool.index_select(0, index).reshape(shape)[:length],
    )


class Both:
    """The submission's cache, the reference's and the list oracle, driven together."""

    def __init__(self, submission, reference, num_blocks, block_size, dtype=torch.float32):
        if dtype == torch.float32:
            self.sub = submission.PagedKVCache(num_blocks, block_size, H, D)  # the default dtype
        else:
            self.sub = submission.PagedKVCache(num_blocks, block_size, H, D, dtype)
        self.ref = reference.PagedKVCache(num_blocks, block_size, H, D, dtype)
        self.oracle = ListCache(dtype)
        self.num_blocks = num_blocks

    def add(self, seq):
        self.sub.call("add_sequence", seq)
        self.ref.add_sequence(seq)
        self.oracle.add(seq)

    def append(self, seq, k, v):
        self.sub.call("append", seq, k, v)
        self.ref.append(seq, k, v)
        self.oracle.append(seq, k, v)

    def fork(self, parent, child):
        free = self.ref.num_free_blocks()
        self.sub.call("fork", parent, child)
        self.ref.fork(parent, child)
        self.oracle.fork(parent, child)
        self.check_table(child, "right after the fork", hint=EAGER_FORK)
        expect(
            self.sub.call("num_free_blocks") == free,
            "a fork changed the number of free blocks",
            hint=EAGER_FORK,
        )

    def free(self, seq):
        self.sub.call("free", seq)
        self.ref.free(seq)
        self.oracle.free(seq)

    def check_table(self, seq, when, misconceptions=None, hint=""):
        assert_close(
            self.sub.call("block_table", seq),
            self.ref.block_table(seq),
            what=f"the block table of sequence {seq!r} {when}",
            misconceptions=misconceptions,
            hint=hint,
        )

    def check_counts(self, when, hint=""):
        for seq in self.oracle.seqs:
            self.check_table(seq, when, hint=hint)
        expect(
            self.sub.call("num_free_blocks") == self.ref.num_free_blocks(),
            f"num_free_blocks() {when} is not the expected count",
            hint=hint,
        )

    def check_refs(self, when, hint=""):
        got = [self.sub.call("ref_count", b) for b in range(self.num_blocks)]
        want = [self.ref.ref_count(b) for b in range(self.num_blocks)]
        expect(got == want, f"the reference counts of the blocks {when} are not the expected ones", hint=hint)

    def check_gather(self, seq, when, hint=""):
        keys, values = self.sub.call("gather", seq)
        k, v = self.oracle.gather(seq)
        wrong_k, wrong_v = physical_order(self.ref, seq)
        assert_close(
            keys,
            k,
            rtol=0,
            atol=0,
            what=f"the keys of sequence {seq!r} {when}",
            misconceptions={PHYSICAL_ORDER: wrong_k},
            hint=hint,
        )
        assert_close(
            values,
            v,
            rtol=0,
            atol=0,
            what=f"the values of sequence {seq!r} {when}",
            misconceptions={PHYSICAL_ORDER: wrong_v},
            hint=hint,
        )

    def check_all(self, when, hint=""):
        self.check_counts(when, hint=hint)
        self.check_refs(when, hint=hint)
        for seq in self.oracle.seqs:
            self.check_gather(seq, when, hint=hint)


# ---------------------------------------------------------------------------- random programs


def run_program(submission, reference, n_ops, block_size, seed, num_blocks=10):
    """A random program of adds, appends (0 to 2 blocks' worth of tokens), forks and frees: the
    table of the sequence touched and the free count checked after each step, everything (every
    table, reference count and gathered sequence) every fifth step and at the end."""
    rng = np.random.default_rng(seed)
    both = Both(submission, reference, num_blocks, block_size)
    next_id = 0
    for step in range(n_ops):
        live = list(both.oracle.seqs)
        op = rng.choice(["add", "append", "append", "append", "fork", "free"]) if live else "add"
        when = f"after step {step + 1} of the program"
        touched = None
        if op == "add":
            both.add(next_id)
            touched, next_id = next_id, next_id + 1
        elif op == "append":
            touched = live[rng.integers(len(live))]
            k, v = tokens(rng, int(rng.integers(0, 2 * block_size + 2)))
            try:
                both.ref.append(touched, k, v)
            except RuntimeError:
                with pytest.raises(RuntimeError):
                    both.sub.call("append", touched, k, v)
                both.check_counts(f"{when} (an append that did not fit)", hint=NOT_ATOMIC)
                continue
            both.sub.call("append", touched, k, v)
            both.oracle.append(touched, k, v)
        elif op == "fork":
            both.fork(live[rng.integers(len(live))], next_id)
            touched, next_id = next_id, next_id + 1
        else:
            both.free(live[rng.integers(len(live))])
        if touched is not None:
            both.check_table(touched, when)
        expect(
            both.sub.call("num_free_blocks") == both.ref.num_free_blocks(),
            f"num_free_blocks() {when} is not the expected count",
        )
        if step % 5 == 4:
            both.check_all(when)
    both.check_all("at the end of the program")


@pytest.mark.parametrize("block_size", [pytest.param(2, id="block-2"), pytest.param(3, id="block-3")])
def test_random_programs(submission, reference, seed, block_size):
    """Random appends, forks and frees: tables, free counts, reference counts and contents along the way."""

    def check(sizes, case_seed):
        run_program(submission, reference, sizes["ops"], sizes["block_size"], case_seed)

    shrink(
        check,
        {"ops": 30, "block_size": block_size},
        seed=seed,
        minimum={"ops": 1, "block_size": block_size},
        seeds=1,
        budget=10,
    )


# ---------------------------------------------------------------------------- filling blocks


@pytest.mark.parametrize(
    "block_size",
    [pytest.param(1, id="block-1"), pytest.param(2, id="block-2"), pytest.param(5, id="block-5")],
)
def test_exact_fill(submission, reference, rng, block_size):
    """Lengths that are multiples of block_size hold length / block_size blocks; one more token, one more."""
    both = Both(submission, reference, 8, block_size)
    both.add(0)
    both.append(0, *tokens(rng, block_size))
    both.check_table(0, "after exactly one block of tokens", misconceptions={EXTRA_BLOCK: [0, 1]})
    both.append(0, *tokens(rng, block_size))
    both.check_table(0, "after exactly two blocks of tokens", misconceptions={EXTRA_BLOCK: [0, 1, 2]})
    both.append(0, *tokens(rng, 1))
    both.check_table(0, "after one more token")
    both.add(1)
    both.append(1, *tokens(rng, 3 * block_size))
    both.check_table(
        1, "after three blocks of tokens in one append", misconceptions={EXTRA_BLOCK: [3, 4, 5, 6]}
    )
    both.check_all("after appends that exactly fill blocks")


def test_append_fills_last_block_first(submission, reference, rng):
    """Several small appends share a block: a new block only when the last one is full."""
    both = Both(submission, reference, 8, 4)
    both.add(0)
    both.add(1)
    for n in (1, 2, 1):
        both.append(0, *tokens(rng, n))
    both.check_table(0, "after appends of 1, 2 and 1 tokens", misconceptions={BLOCK_PER_APPEND: [0, 1, 2]})
    both.append(1, *tokens(rng, 3))
    both.append(0, *tokens(rng, 2))
    both.check_table(0, "after 2 more tokens", misconceptions={BLOCK_PER_APPEND: [0, 1, 2, 4]})
    both.check_all("after small appends")


def test_append_zero_tokens(submission, reference):
    """Appending 0 tokens changes nothing: no block for an empty sequence, no copy of a shared block."""
    both = Both(submission, reference, 6, 4)
    empty = torch.zeros(0, H, D)
    both.add(0)
    both.append(0, empty, empty)
    both.check_table(
        0, "after appending 0 tokens to an empty sequence", misconceptions={BLOCK_PER_APPEND: [0]}
    )
    both.append(0, torch.ones(2, H, D), torch.ones(2, H, D))
    both.fork(0, 1)
    both.append(1, empty, empty)
    both.check_all(
        "after appending 0 tokens to a forked sequence", hint="an append of 0 tokens changes nothing"
    )


# ---------------------------------------------------------------------------- gather


def test_gather_follows_the_table(submission, reference, rng):
    """Blocks reused after a free make tables such as [1, 0]: gather follows the table's order."""
    both = Both(submission, reference, 6, 2)
    both.add("a")
    both.add("b")
    both.append("a", *tokens(rng, 2))  # a = [0]
    both.append("b", *tokens(rng, 2))  # b = [1]
    both.free("a")
    both.append("b", *tokens(rng, 3))  # b = [1, 0, 2]
    both.check_table("b", "after reusing a freed block")
    both.check_gather("b", "with the table [1, 0, 2]")


def test_pool_positions(submission, reference, rng):
    """Token t of a sequence with table T is at k_pool[T[t // block_size], t % block_size] (and v_pool)."""
    both = Both(submission, reference, 8, 3)
    both.add(0)
    both.add(1)
    both.append(0, *tokens(rng, 4))
    both.append(1, *tokens(rng, 5))
    both.fork(0, 2)
    both.append(2, *tokens(rng, 3))
    both.free(0)
    both.append(1, *tokens(rng, 2))
    both.check_all("before reading the pools")
    k_pool, v_pool = both.sub.attr("k_pool"), both.sub.attr("v_pool")
    for name, pool in (("k_pool", k_pool), ("v_pool", v_pool)):
        expect(
            isinstance(pool, torch.Tensor) and tuple(pool.shape) == (8, 3, H, D),
            f"{name} is not a tensor of shape (num_blocks, block_size, n_heads, head_dim) = (8, 3, {H}, {D})",
        )
    for seq in (1, 2):
        table = both.ref.block_table(seq)
        k, v = both.oracle.gather(seq)
        rows = torch.tensor([table[t // 3] for t in range(len(k))])
        slots = torch.tensor([t % 3 for t in range(len(k))])
        hint = "write token t into k_pool[table[t // block_size], t % block_size], in place"
        assert_close(k_pool[rows, slots], k, what=f"the keys of sequence {seq} read from k_pool", hint=hint)
        assert_close(v_pool[rows, slots], v, what=f"the values of sequence {seq} read from v_pool", hint=hint)


@pytest.mark.parametrize("dtype", dtype_params("float16", "bfloat16"))
def test_half_precision(submission, reference, rng, dtype):
    """A float16 or bfloat16 cache stores and gathers its tokens in its dtype, float32 inputs converted."""
    both = Both(submission, reference, 6, 4, dtype)
    assert_close(both.sub.attr("k_pool"), torch.zeros(6, 4, H, D, dtype=dtype), what="k_pool of a new cache")
    both.add(0)
    both.append(0, *tokens(rng, 5, dtype))
    both.append(0, *tokens(rng, 2))  # float32 tokens, stored in the cache's dtype
    both.fork(0, 1)
    both.append(1, *tokens(rng, 3, dtype))
    keys, values = both.sub.call("gather", 1)
    expect(
        all(isinstance(t, torch.Tensor) and t.dtype == dtype for t in (keys, values)),
        "gather on a half-precision cache did not return tensors of the cache's dtype",
        hint="store in the cache's dtype, and gather returns that dtype",
    )
    both.check_all("in a half-precision cache")


# ---------------------------------------------------------------------------- fork, free, copy-on-write


def test_copy_on_write_from_the_parent(submission, reference, rng):
    """After a fork the parent writes first: the parent gets the copy, the child keeps the shared block."""
    both = Both(submission, reference, 8, 4)
    both.add("p")
    both.append("p", *tokens(rng, 6))
    both.fork("p", "c")
    both.append("p", *tokens(rng, 1))
    both.check_table("p", "after the parent's first append", misconceptions={NO_COW: [0, 1]})
    both.check_table("c", "after the parent's first append", misconceptions={EAGER_FORK: [2, 3]})
    both.append("c", *tokens(rng, 1))  # the child is now the shared block's only holder: in place
    both.check_table("c", "after the child's append", misconceptions={NO_COW: [0, 1]})
    both.check_all("after copy-on-write from the parent's side")


def test_copy_on_write_from_the_child(submission, reference, rng):
    """After a fork the child writes first, several blocks' worth: the copy comes first, then new blocks."""
    both = Both(submission, reference, 10, 4)
    both.add(0)
    both.append(0, *tokens(rng, 6))
    both.fork(0, 1)
    both.check_counts("after the fork", hint=EAGER_FORK)
    both.check_refs("after the fork", hint="a fork adds one reference to each of the parent's blocks")
    both.append(1, *tokens(rng, 7))  # 2 filled slots + 7 = 9 tokens from block 1 on: copy + 2 new
    both.check_table(
        1, "after the child's append", misconceptions={COW_LATE: [0, 4, 2, 3], NO_COW: [0, 1, 2, 3]}
    )
    both.append(0, *tokens(rng, 3))
    both.check_all("after copy-on-write from the child's side")


def test_fork_at_block_boundary(submission, reference, rng):
    """A fork whose last block is full: the next append allocates a new block and copies nothing."""
    both = Both(submission, reference, 8, 4)
    both.add(0)
    both.append(0, *tokens(rng, 8))
    both.fork(0, 1)
    both.append(1, *tokens(rng, 1))
    both.check_table(1, "after the child's first token", misconceptions={COW_FULL: [0, 2, 3]})
    both.append(0, *tokens(rng, 5))
    both.check_all("after appends on both sides of a fork at a block boundary")


def test_fork_of_a_fork(submission, reference, rng):
    """A chain of forks shares the blocks three ways; each sequence then writes its own tokens."""
    both = Both(submission, reference, 10, 4)
    both.add(0)
    both.append(0, *tokens(rng, 5))
    both.fork(0, 1)
    both.fork(1, 2)
    both.check_refs("after two forks", hint="each fork adds one reference to every block it shares")
    both.check_counts("after two forks", hint=EAGER_FORK)
    for seq in (2, 0, 1):
        both.append(seq, *tokens(rng, 2))
    both.check_all("after each of three sharers appended")


@pytest.mark.parametrize(
    "first", [pytest.param("parent", id="parent-first"), pytest.param("child", id="child-first")]
)
def test_free_shared_blocks(submission, reference, rng, first):
    """Freeing one of two sharers keeps the shared blocks for the other; freeing both frees everything."""
    both = Both(submission, reference, 8, 4)
    both.add("p")
    both.append("p", *tokens(rng, 10))
    both.fork("p", "c")
    both.append("c", *tokens(rng, 1))
    both.check_table("c", "after the child's first append", misconceptions={NO_COW: [0, 1, 2]})
    one, other = ("p", "c") if first == "parent" else ("c", "p")
    both.free(one)
    both.check_refs(f"after freeing the {first}", hint=FREE_SHARED)
    both.check_counts(f"after freeing the {first}", hint=FREE_SHARED)
    both.add("n")
    both.append("n", *tokens(rng, 9))  # reuses the freed blocks, never the shared ones
    both.check_all("after a new sequence reused the freed blocks", hint=FREE_SHARED)
    both.free(other)
    both.free("n")
    expect(
        both.sub.call("num_free_blocks") == 8,
        "after freeing every sequence, not every block is free",
        hint="each free() drops one reference per block, and a block is free when its count reaches 0",
    )


# ---------------------------------------------------------------------------- running out, errors


def snapshot(cache, seqs, num_blocks):
    return (
        [cache.call("block_table", s) for s in seqs],
        [cache.call("seq_len", s) for s in seqs],
        cache.call("num_free_blocks"),
        [cache.call("ref_count", b) for b in range(num_blocks)],
    )


@pytest.mark.parametrize(
    "case",
    [pytest.param("new-blocks", id="new-blocks"), pytest.param("copy-on-write", id="copy-on-write-needed")],
)
def test_out_of_blocks_leaves_cache_unchanged(submission, reference, rng, case):
    """An append the pool cannot hold raises RuntimeError and changes nothing; a smaller one then fits."""
    both = Both(submission, reference, 5, 2)
    both.add(0)
    both.append(0, *tokens(rng, 3))  # [0, 1]
    if case == "new-blocks":
        both.add(1)
        both.append(1, *tokens(rng, 1))  # [2]: 2 blocks left; 6 more tokens of seq 0 need 3
        seq, n, fits = 0, 6, 5
    else:
        both.fork(0, 1)
        both.add(2)
        both.append(2, *tokens(rng, 4))  # [2, 3]: 1 block left; seq 1 needs the copy plus one more
        seq, n, fits = 1, 3, 1
    seqs = list(both.oracle.seqs)
    before = snapshot(both.sub, seqs, 5)
    with pytest.raises(RuntimeError):
        both.sub.call("append", seq, *tokens(rng, n))
    after = snapshot(both.sub, seqs, 5)
    expect(
        before == after,
        "an append that raised RuntimeError changed the tables or the counts",
        hint=NOT_ATOMIC,
    )
    both.append(seq, *tokens(rng, fits))
    both.check_all("after an append that fits")


def test_errors(submission):
    """KeyError for unknown ids, ValueError for existing ids and wrong shapes, IndexError for block ids."""
    cache = submission.PagedKVCache(4, 2, H, D)
    cache.call("add_sequence", 0)
    with pytest.raises(ValueError):
        cache.call("add_sequence", 0)
    with pytest.raises(ValueError):
        cache.call("fork", 0, 0)
    with pytest.raises(KeyError):
        cache.call("fork", 5, 6)
    with pytest.raises(KeyError):
        cache.call("free", 5)
    with pytest.raises(KeyError):
        cache.call("block_table", 5)
    with pytest.raises(KeyError):
        cache.call("seq_len", 5)
    with pytest.raises(ValueError):
        cache.call("append", 0, torch.zeros(2, H + 1, D), torch.zeros(2, H + 1, D))
    with pytest.raises(ValueError):
        cache.call("append", 0, torch.zeros(2, H, D), torch.zeros(3, H, D))
    with pytest.raises(IndexError):
        cache.call("ref_count", 4)
    with pytest.raises(IndexError):
        cache.call("ref_count", -1)
    expect(cache.call("num_free_blocks") == 4, "a failed call changed the number of free blocks")


def test_append_leaves_inputs_unchanged(submission, rng):
    """append copies k and v into the pool and leaves the caller's tensors as they were."""
    # inputs only: what append stores (float32 tokens, float16 cache) is checked by test_half_precision
    cache = submission.PagedKVCache(4, 2, H, D, torch.float16)
    cache.call("add_sequence", 0)
    k, v = tokens(rng, 3)
    call_unchanged(cache.append, 0, k, v, names=("seq_id", "k", "v"), what="append")


# ---------------------------------------------------------------------------- memory


@pytest.mark.performance
def test_fill_memory(perf):
    """The largest tensor add_sequence and append create does not grow with the number of blocks."""
    perf.scaling(
        "fill_memory",
        lambda rng, n: Call("fill_cache", Setup("PagedKVCache", n, 4, 2, 8), [5, 3]),
        hint="a tensor that grows with the pool was created in add_sequence or append: keep tokens in "
        "k_pool and v_pool only (no buffer for the longest possible sequence, no copy of a pool)",
    )
