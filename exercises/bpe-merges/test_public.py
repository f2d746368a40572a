"""Public tests for bpe-merges: small corpora whose answers you can check by hand.

Run them with `grader test bpe-merges bpe.py`.
"""

import pytest

from grader.testing import File, assert_close, expect

EOT = "<|endoftext|>"
TIES = "on equal counts the lexicographically greatest pair wins: max(counts, key=lambda p: (counts[p], p))"


def train(submission, text, vocab_size, special_tokens=()):
    """Write `text` to a file and train on it."""
    return submission.train_bpe(File(text.encode("utf-8"), "corpus.txt"), vocab_size, list(special_tokens))


def check_merges(merges, expected, *, misconceptions=None, hint=""):
    """Compare item by item (the first wrong merge is the one to look at), then the length."""
    n = min(len(merges), len(expected))
    assert_close(
        merges[:n],
        expected[:n],
        what="merges",
        misconceptions={label: wrong[:n] for label, wrong in (misconceptions or {}).items()},
        hint=hint,
    )
    expect(
        len(merges) == len(expected),
        f"got {len(merges)} merges, expected {len(expected)}: {merges}",
        hint=hint
        or "the number of merges is vocab_size - 256 - len(special_tokens), or fewer when no pair is left",
    )


# The corpus of the lesson's worked example. Its pre-tokens: "low" x1, " low" x4, " lower" x2,
# " widest" x3, " newest" x6.
WORKED = "low low low low low lower lower widest widest widest newest newest newest newest newest newest"
WORKED_MERGES = [
    (b"s", b"t"),  # 9, tied with (e, s): b"s" > b"e"
    (b"e", b"st"),  # 9
    (b"o", b"w"),  # 7, tied with (l, o): b"o" > b"l"
    (b"l", b"ow"),  # 7
    (b"w", b"est"),  # 6, tied with (n, e), (e, w), (" ", n), (" ", low): b"w" is the greatest
    (b"n", b"e"),  # 6
    (b"ne", b"west"),  # 6
    (b" ", b"newest"),  # 6
    (b" ", b"low"),  # 6
    (b"w", b"i"),  # 3, tied with (i, d), (d, est) and (" ", w)
]


def test_returns_vocab_and_merges(submission):
    """train_bpe returns (vocab: dict[int, bytes], merges: list[tuple[bytes, bytes]])."""
    result = train(submission, WORKED, 256 + 3)
    expect(isinstance(result, tuple) and len(result) == 2, "train_bpe should return a tuple (vocab, merges)")
    vocab, merges = result
    expect(isinstance(vocab, dict), f"vocab should be a dict, not a {type(vocab).__name__}")
    expect(isinstance(merges, list), f"merges should be a list, not a {type(merges).__name__}")
    expect(
        all(type(k) is int and type(v) is bytes for k, v in vocab.items()),
        "vocab should map int ids to bytes",
    )
    expect(
        all(type(m) is tuple and len(m) == 2 and all(type(x) is bytes for x in m) for m in merges),
        "each merge should be a tuple (bytes, bytes)",
    )
    expect(len(merges) == 3, f"vocab_size - 256 = 3 merges were asked for, got {len(merges)}")
    expect(
        sorted(vocab) == list(range(256 + 3)),
        f"the ids of vocab should be 0, 1, ..., 258 (vocab_size - 1); got {len(vocab)} ids",
    )
    assert_close({i: vocab[i] for i in range(256)}, {i: bytes([i]) for i in range(256)}, what="vocab")


def test_worked_example(submission):
    """The ten merges of the lesson's worked example, ties included."""
    vocab, merges = train(submission, WORKED, 256 + 10)
    smallest = [(b"e", b"s"), (b"es", b"t"), (b"l", b"o"), (b"lo", b"w"), (b" ", b"low"), (b" ", b"n")]
    assert_close(
        merges[:6],
        WORKED_MERGES[:6],
        what="the first six merges",
        misconceptions={"ties broken towards the smallest pair? " + TIES: smallest},
        hint="the lesson lists the counts before each of these merges",
    )
    check_merges(
        merges,
        WORKED_MERGES,
        hint="pre-tokenise with the GPT-2 regex: the space belongs to the word after it (' newest')",
    )
    assert_close(vocab.get(256 + 9), b"wi", what="vocab[265], the token of the last merge")


def test_overlapping_pairs_all_count(submission):
    """'aaaa' holds (a, a) three times, which beats the two (b, c) of ' bc bc'."""
    vocab, merges = train(submission, "aaaa bc bc", 256 + 4)
    check_merges(
        merges,
        [(b"a", b"a"), (b"b", b"c"), (b" ", b"bc"), (b"aa", b"aa")],
        misconceptions={
            "overlapping pairs counted once? 'aaaa' holds (a, a) 3 times": [
                (b"b", b"c"),
                (b"a", b"a"),
                (b" ", b"bc"),
                (b"aa", b"aa"),
            ]
        },
        hint="counts: (a, a) 3, (' ', b) 2, (b, c) 2; then " + TIES,
    )


def test_merge_applies_left_to_right(submission):
    """Merging (a, a) turns 'aaa' into [aa, a], so the next merge is (aa, a)."""
    vocab, merges = train(submission, "aaa", 256 + 2)
    check_merges(
        merges,
        [(b"a", b"a"), (b"aa", b"a")],
        misconceptions={"merge applied right to left? 'aaa' becomes [aa, a]": [(b"a", b"a"), (b"a", b"aa")]},
    )


def test_special_tokens(submission):
    """Special tokens get ids right after the bytes and never take part in a merge."""
    text = f"hug{EOT}s hugs{EOT}hug pug{EOT}s"
    vocab, merges = train(submission, text, 256 + 1 + 6, [EOT])
    assert_close(
        vocab.get(256),
        EOT.encode("utf-8"),
        what="vocab[256], the special token",
        hint="ids 0-255 are the bytes, then the special tokens in the given order, then the merges",
    )
    check_merges(
        merges,
        [(b"u", b"g"), (b"h", b"ug"), (b"p", b"ug"), (b"hug", b"s"), (b" ", b"pug"), (b" ", b"hugs")],
        misconceptions={
            "special tokens left in the text? Split them out first": [
                (b"u", b"g"),
                (b"|", b">"),
                (b"x", b"t"),
                (b"t", b"e"),
                (b"te", b"xt"),
                (b"o", b"f"),
            ],
            "text around a special token joined? No pair spans a special token": [
                (b"u", b"g"),
                (b"ug", b"s"),
                (b"h", b"ugs"),
                (b"p", b"ugs"),
                (b"hugs", b"h"),
                (b"hugsh", b"ug"),
            ],
        },
        hint="the pre-tokens are 'hug', 's', ' hugs', 'hug', ' pug' and 's'; " + TIES,
    )
    assert_close(vocab.get(257), b"ug", what="vocab[257], the token of the first merge")


def test_stops_when_nothing_is_left(submission):
    """Once every pre-token is a single token, training stops early."""
    vocab, merges = train(submission, "ab ab", 1000)
    check_merges(merges, [(b"a", b"b"), (b" ", b"ab")], hint="the pre-tokens are 'ab' and ' ab'")
    expect(len(vocab) == 258, f"vocab should hold the 256 bytes + 2 merges, it holds {len(vocab)}")


@pytest.mark.parametrize(
    "vocab_size, specials",
    [pytest.param(255, [], id="255"), pytest.param(256, [EOT], id="256-with-a-special-token")],
)
def test_vocab_size_too_small(submission, vocab_size, specials):
    """A vocab_size below 256 + len(special_tokens) raises ValueError."""
    with pytest.raises(ValueError):
        train(submission, "hello", vocab_size, specials)
