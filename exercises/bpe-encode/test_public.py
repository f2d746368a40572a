"""Public tests for bpe-encode: small vocabularies whose answers you can check by hand.

Run them with `grader test bpe-encode tokenizer.py`.
"""

import pytest

from grader.testing import File, RemoteError, assert_close, expect

EOT = "<|endoftext|>"
BYTES = {i: bytes([i]) for i in range(256)}

# The merges of the bpe-merges worked example (ids 256..265), as in the README.
MERGES = [
    (b"s", b"t"),
    (b"e", b"st"),
    (b"o", b"w"),
    (b"l", b"ow"),
    (b"w", b"est"),
    (b"n", b"e"),
    (b"ne", b"west"),
    (b" ", b"newest"),
    (b" ", b"low"),
    (b"w", b"i"),
]
VOCAB = {**BYTES, **{256 + r: a + b for r, (a, b) in enumerate(MERGES)}}


def tokens(ids):
    """The bytes of each id, to read a failure more easily."""
    return [VOCAB.get(i) for i in ids]


def test_worked_example(submission):
    """The README's worked example: "lowest newest nest" with the ten merges."""
    tok = submission.Tokenizer(VOCAB, MERGES)
    ids = tok.encode("lowest newest nest")
    expect(isinstance(ids, list) and all(type(i) is int for i in ids), "encode must return a list of ints")
    assert_close(
        ids,
        [259, 257, 263, 32, 110, 257],  # low est | ' newest' | ' ' n est
        what=f"encode('lowest newest nest') (tokens {tokens(ids)})",
        misconceptions={
            "merged the leftmost mergeable pair first? In ' nest', (s, t) has rank 0 and goes before (n, e), "
            "rank 5": [259, 257, 263, 32, 261, 256],
        },
    )


def test_lowest_rank_wins_wherever_it_is(submission):
    """With merges [(b, c), (a, b)], "abc" is a·bc: (b, c) was learned first, though (a, b) is to its left."""
    merges = [(b"b", b"c"), (b"a", b"b")]
    vocab = {**BYTES, 256: b"bc", 257: b"ab"}
    got = submission.Tokenizer(vocab, merges).encode("abc")
    assert_close(
        got,
        [97, 256],
        what="encode('abc')",
        misconceptions={"merged the leftmost mergeable pair first? The lowest rank goes first": [257, 99]},
    )


def test_every_occurrence_left_to_right(submission):
    """With the merge (a, a), "aaaaa" is aa·aa·a: every occurrence, left to right, without overlap."""
    vocab = {**BYTES, 256: b"aa", 257: b"aaaa"}
    got = submission.Tokenizer(vocab, [(b"a", b"a"), (b"aa", b"aa")]).encode("aaaaa")
    assert_close(got, [257, 97], what="encode('aaaaa')", hint="aaaaa -> aa·aa·a -> aaaa·a")


def test_no_merges_gives_the_utf8_bytes(submission):
    """Without merges, the ids are the UTF-8 bytes of the text."""
    text = "héllo 🎉"
    assert_close(
        submission.Tokenizer(BYTES, []).encode(text), list(text.encode("utf-8")), what=f"encode({text!r})"
    )


def test_merges_stay_inside_pretokens(submission):
    """ "ab ab" is the pre-tokens "ab" and " ab": the merge (b, " ") can never apply."""
    vocab = {**BYTES, 256: b"b ", 257: b"ab"}
    got = submission.Tokenizer(vocab, [(b"b", b" "), (b"a", b"b")]).encode("ab ab")
    assert_close(
        got,
        [257, 32, 257],
        what="encode('ab ab')",
        misconceptions={"merged across pre-tokens? Split with GPT2_SPLIT first": [97, 256, 257]},
    )


def test_special_tokens_longest_first(submission):
    """Overlapping special tokens: the longest one that matches wins."""
    specials = ["<|a|>", "<|a|><|a|>"]
    vocab = {**BYTES, 256: b"<|a|>", 257: b"<|a|><|a|>"}
    got = submission.Tokenizer(vocab, [], specials).encode("x<|a|><|a|><|a|>y")
    assert_close(
        got,
        [ord("x"), 257, 256, ord("y")],
        what="encode('x<|a|><|a|><|a|>y')",
        misconceptions={
            "special tokens matched shortest first? Try the longest first": [120, 256, 256, 256, 121]
        },
    )


def test_special_tokens_inside_words(submission):
    """A special token is one id wherever it is; the text around it is encoded as usual."""
    vocab = {**VOCAB, 266: EOT.encode()}
    got = submission.Tokenizer(vocab, MERGES, [EOT]).encode(f"lowest{EOT}nest{EOT}{EOT}")
    assert_close(got, [259, 257, 266, 110, 257, 266, 266], what=f"encode('lowest{EOT}nest{EOT}{EOT}')")


def test_special_token_added_to_vocab(submission):
    """A special token missing from vocab gets the next free id, max(vocab) + 1."""
    got = submission.Tokenizer(VOCAB, MERGES, [EOT]).encode(f"nest{EOT}")
    assert_close(got, [110, 257, 266], what=f"encode('nest{EOT}') with {EOT} not in vocab")


def test_decode(submission):
    """decode joins the bytes of the ids and decodes them as UTF-8."""
    tok = submission.Tokenizer(VOCAB, MERGES)
    assert_close(
        tok.decode([259, 257, 263, 32, 110, 257]), "lowest newest nest", what="decode of the worked example"
    )


def test_decode_character_split_over_tokens(submission):
    """ "é" is the bytes c3 a9: as two ids, it still decodes to one character."""
    got = submission.Tokenizer(BYTES, []).decode([ord("h"), 0xC3, 0xA9])
    assert_close(
        got,
        "hé",
        what="decode([104, 0xC3, 0xA9])",
        misconceptions={
            "decoded each token on its own? Join the bytes first, then decode once": "h\ufffd\ufffd"
        },
    )


def test_decode_broken_utf8(submission):
    """Bytes that are not valid UTF-8 become U+FFFD (errors="replace"), never an exception."""
    tok = submission.Tokenizer(BYTES, [])
    try:
        got = tok.decode([ord("o"), ord("k"), 0xC3])
    except RemoteError as exc:
        if exc.type_name == "UnicodeDecodeError":
            pytest.fail("decode raised UnicodeDecodeError: decode with errors='replace'")
        raise
    assert_close(got, "ok\ufffd", what="decode([111, 107, 0xC3])")


def test_round_trip(submission):
    """decode(encode(text)) == text."""
    tok = submission.Tokenizer(VOCAB, MERGES, [EOT])
    text = f"The newest   widest\n\n lowest🎉 {EOT}café's"
    assert_close(tok.decode(tok.encode(text)), text, what="decode(encode(text))")


def test_encode_iterable_across_chunks(submission):
    """encode_iterable gives the ids of the joined text, whatever the chunks."""
    tok = submission.Tokenizer(VOCAB, MERGES)
    chunks = ["lowest ne", "west n", "est"]
    gen = tok.encode_iterable(chunks)
    expect(not isinstance(gen, list), "encode_iterable must be a generator (use yield), not return a list")
    assert_close(
        list(gen),
        [259, 257, 263, 32, 110, 257],
        what="the ids of encode_iterable(['lowest ne', 'west n', 'est'])",
        misconceptions={
            "encoded each chunk on its own? A word can continue in the next chunk": [
                259,
                257,
                32,
                261,
                260,
                32,
                110,
                257,
            ]
        },
    )


def test_encode_iterable_open_file(submission):
    """encode_iterable on an open text file (it yields lines) gives the ids of its whole text."""
    text = "lowest\n\n\nnewest  \nnest"
    tok = submission.Tokenizer(VOCAB, MERGES)
    gen = tok.encode_iterable(File(text.encode(), "text.txt", open=True))
    assert_close(gen.take(3), [259, 257, 10], what="the first three ids")
    assert_close(gen.take(100), tok.encode(text)[3:], what="the rest of the ids")
