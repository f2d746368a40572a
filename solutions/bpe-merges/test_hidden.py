"""Hidden tests for bpe-merges.

Every corpus is generated here from the `rng` fixture. Outputs are compared exactly with the
reference's; when they differ, a slow but obviously correct trainer (`oracle`) replays the
likely mistakes and the failure names the one the submission made.
"""

from collections import Counter

import numpy as np
import pytest
import regex

from grader.testing import Call, File, assert_close, compare, expect

GPT2 = regex.compile(r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
EOT = "<|endoftext|>"

# --------------------------------------------------------------------------- likely mistakes

MISTAKES = {  # most likely first
    "ties-smallest": "ties broken towards the smallest pair? On equal counts the lexicographically "
    "GREATEST (bytes, bytes) pair wins: max over (count, pair).",
    "whitespace-split": "pre-tokenised with str.split()? Use the GPT-2 regex: a space stays attached "
    'to the word after it (" cat") and punctuation is its own pre-token.',
    "specials-not-split": "special tokens left in the text? Split them out before pre-tokenising: they "
    "never take part in merges.",
    "overlaps-once": 'overlapping pairs counted once? In "aaa" the pair (a, a) occurs twice: count '
    "every adjacent position.",
    "specials-after-merges": "special tokens placed after the merges? Their ids come right after the "
    "256 bytes (256, 257, ...), before the first merge.",
    "unweighted": "pairs not weighted by frequency? Each pre-token's pairs count as many times as the "
    "pre-token occurs in the text.",
    "merge-right-to-left": 'merge applied right to left? Replace left to right without overlap: "aaa" '
    "becomes [aa, a].",
    "specials-joined": "text on both sides of a special token joined together? A special token is a "
    "barrier: no pair spans it.",
    "specials-given-order": "special tokens matched in the given order? When one special token is a "
    "prefix of another, split on the longest first.",
    "no-pretokenization": "pairs counted across pre-token boundaries? Split each chunk with the GPT-2 "
    "regex and count pairs inside each pre-token only.",
    "newline-translation": "file read with newline translation? open(path) turns \\r\\n into \\n: use "
    "open(path, encoding='utf-8', newline='') or decode the raw bytes.",
    "ties-first-seen": "ties broken by whichever pair was counted first (e.g. Counter.most_common)? "
    "On equal counts the lexicographically greatest pair wins.",
}
COMMON = ("ties-smallest", "whitespace-split", "specials-not-split", "overlaps-once", "specials-after-merges")


def likely(*first):
    """The mistakes to replay for a test: its own first, then the most common ones."""
    return tuple(dict.fromkeys(first + COMMON))


def _pairs(word, overlaps=True):
    """The adjacent pairs of `word`; with overlaps=False, a pair that overlaps the previous
    occurrence of the same pair is skipped (the mistake: "aaa" holds (a, a) once)."""
    last = -2
    for i in range(len(word) - 1):
        pair = (word[i], word[i + 1])
        if not overlaps and i == last + 1 and pair == (word[i - 1], word[i]):
            continue
        last = i
        yield pair


def _apply(word, pair, new, right_to_left=False):
    if right_to_left:
        return tuple(reversed(_apply(tuple(reversed(word)), (pair[1], pair[0]), new)))
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def oracle(text, vocab_size, specials, mistake=""):
    """Recount-everything BPE, slow and plain; `mistake` (a key of MISTAKES) makes it go wrong in
    that one way."""
    if mistake == "newline-translation":
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    chunks = [text]
    if specials and mistake != "specials-not-split":
        ordered = (
            list(specials) if mistake == "specials-given-order" else sorted(specials, key=len, reverse=True)
        )
        chunks = regex.split("|".join(regex.escape(s) for s in ordered), text)
        if mistake == "specials-joined":
            chunks = ["".join(chunks)]
    pretokens = Counter()
    for chunk in chunks:
        if mistake == "whitespace-split":
            pretokens.update(chunk.split())
        elif mistake == "no-pretokenization":
            pretokens.update([chunk] if chunk else [])
        else:
            pretokens.update(GPT2.findall(chunk))
    words = {
        tuple(bytes([b]) for b in w.encode("utf-8")): 1 if mistake == "unweighted" else f
        for w, f in pretokens.items()
    }
    merges = []
    for _ in range(vocab_size - 256 - len(specials)):
        counts = Counter()
        for word, freq in words.items():
            for pair in _pairs(word, overlaps=mistake != "overlaps-once"):
                counts[pair] += freq
        if not counts:
            break
        if mistake == "ties-smallest":
            best = min(counts, key=lambda p: (-counts[p], p))
        elif mistake == "ties-first-seen":
            best = max(counts, key=counts.__getitem__)  # the first of the maxima, in insertion order
        else:
            best = max(counts, key=lambda p: (counts[p], p))
        merges.append(best)
        new = best[0] + best[1]
        words = {_apply(w, best, new, mistake == "merge-right-to-left"): f for w, f in words.items()}
    tokens = [s.encode("utf-8") for s in specials]
    merged = [a + b for a, b in merges]
    vocab = {i: bytes([i]) for i in range(256)}
    for token in merged + tokens if mistake == "specials-after-merges" else tokens + merged:
        vocab[len(vocab)] = token
    return vocab, merges


# --------------------------------------------------------------------------- corpora

ONSETS = "b c d f g h j k l m n p r s t v w z br ch cl dr fl gr pl pr sh sk st th tr".split() + [""] * 4
VOWELS = "a e i o u a e o ai ea ou y".split()
CODAS = "n r s t l m nd st ng ck rt".split() + [""] * 5
CONTRACTIONS = ["'s", "'t", "'re", "'ll", "'ve", "'d", "'m"]
PUNCTUATION = [",", ",", ",", ";", ":", " -", "...", " (", ")"]
ENDINGS = [".", ".", ".", ".", "!", "?", "?!"]
SYLLABLES = [0.3, 0.4, 0.22, 0.08]  # how many syllables a word has: 1, 2, 3 or 4


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def syllable_words(rng, n):
    """`n` made-up words of one to four syllables (onset, vowel, coda)."""
    sizes = 1 + rng.choice(len(SYLLABLES), size=n, p=SYLLABLES)
    onsets = rng.integers(len(ONSETS), size=(n, 4))
    vowels = rng.integers(len(VOWELS), size=(n, 4))
    codas = rng.integers(len(CODAS), size=(n, 4))
    return [
        "".join(ONSETS[onsets[i, j]] + VOWELS[vowels[i, j]] + CODAS[codas[i, j]] for j in range(sizes[i]))
        for i in range(n)
    ]


def alphabet_words(alphabet, max_len=5):
    """A word maker: `n` strings of 1 to `max_len` characters drawn from `alphabet`."""

    def make(rng, n):
        sizes = rng.integers(1, max_len + 1, size=n)
        chars = rng.integers(len(alphabet), size=(n, max_len))
        return ["".join(alphabet[c] for c in chars[i, : sizes[i]]) for i in range(n)]

    return make


def lexicon(rng, size, make_words=syllable_words):
    """`size` distinct words, the frequent ones (first) tending to be short, as in real text."""
    words = set()
    for _ in range(20):
        words.update(make_words(rng, size))
        if len(words) >= size:
            break
    words = sorted(words)
    if len(words) > size:
        words = [words[i] for i in sorted(rng.choice(len(words), size, replace=False))]
    noisy = np.array([len(w) for w in words]) + rng.normal(0, 2.5, len(words))
    return [words[i] for i in np.argsort(noisy, kind="stable")]


def text_from(
    rng,
    n_chars,
    words,
    *,
    specials=(),
    numbers=0.04,
    contractions=0.03,
    punctuation=0.08,
    zipf=1.0,
    extras=(),
    extra_rate=0.0,
):
    """Sentences of Zipf-distributed words with capitals, punctuation, numbers and contractions,
    in paragraphs; documents separated by the special tokens (when given)."""
    cdf = np.cumsum(1.0 / np.arange(1, len(words) + 1) ** zipf)
    cdf /= cdf[-1]
    docs, size = [], 0
    while size < n_chars:
        paragraphs = []
        for _ in range(int(rng.integers(1, 4))):
            sentences = []
            for _ in range(int(rng.integers(1, 6))):
                k = int(rng.integers(3, 14))
                picked = np.minimum(np.searchsorted(cdf, rng.random(k)), len(words) - 1)
                kind, punct = rng.random(k), rng.random(k)
                out = []
                for j in range(k):
                    word = words[picked[j]]
                    if kind[j] < numbers:
                        word = str(int(rng.integers(0, 10 ** int(rng.integers(1, 6)))))
                    elif kind[j] < numbers + contractions:
                        word += _pick(rng, CONTRACTIONS)
                    elif extras and kind[j] < numbers + contractions + extra_rate:
                        word = _pick(rng, extras) if rng.random() < 0.5 else word + _pick(rng, extras)
                    if j == 0:
                        word = word[:1].upper() + word[1:]
                    if j < k - 1 and punct[j] < punctuation:
                        word += _pick(rng, PUNCTUATION)
                    out.append(word)
                sentences.append(" ".join(out) + _pick(rng, ENDINGS))
            paragraphs.append(" ".join(sentences))
        doc = "\n\n".join(paragraphs)
        docs.append(doc)
        size += len(doc)
    if not specials:
        return "\n\n".join(docs)
    out = docs[0]
    for doc in docs[1:]:
        out += _pick(rng, list(specials)) + doc
    return out


def english_like(rng, n_chars, *, lexicon_size=400, specials=(), **kw):
    """Text in a made-up language with English-like statistics."""
    return text_from(rng, n_chars, lexicon(rng, lexicon_size), specials=specials, **kw)


# --------------------------------------------------------------------------- checking


def train(module, text, vocab_size, specials):
    return module.train_bpe(File(text.encode("utf-8"), "corpus.txt"), vocab_size, list(specials))


def _first_mistake(got, text, vocab_size, specials, mistakes, part):
    """The first of `mistakes` whose output (part 0: vocab, 1: merges) is the submission's."""
    for mistake in mistakes:
        wrong = oracle(text, vocab_size, specials, mistake)[part]
        if compare(got[part], wrong) is None:
            return {MISTAKES[mistake]: wrong}
    return {}


def check(got, want, text, vocab_size, specials, mistakes=tuple(MISTAKES)):
    """Exact comparison with the reference's (vocab, merges). On a mismatch the oracle replays
    `mistakes`, most likely first, until one reproduces the submission's output: the failure
    then names it."""
    expect(isinstance(got, tuple) and len(got) == 2, "train_bpe should return a tuple (vocab, merges)")
    if compare(got[1], want[1]) is not None:
        assert_close(
            got[1],
            want[1],
            what="merges",
            misconceptions=_first_mistake(got, text, vocab_size, specials, mistakes, 1),
            hint="merges are compared in order: the first item that differs is the first wrong merge",
        )
    if compare(got[0], want[0]) is not None:
        assert_close(
            got[0],
            want[0],
            what="vocab",
            misconceptions=_first_mistake(got, text, vocab_size, specials, mistakes, 0),
            hint="ids 0-255 are the bytes, then the special tokens in the given order, then one id per merge",
        )


def run_and_check(submission, reference, text, vocab_size, specials, mistakes=tuple(MISTAKES)):
    want = train(reference, text, vocab_size, specials)
    got = train(submission, text, vocab_size, specials)
    check(got, want, text, vocab_size, specials, mistakes)


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize(
    "n_chars, lexicon_size, merges, specials",
    [
        pytest.param(3000, 150, 40, [EOT], id="small-40-merges"),
        pytest.param(6000, 400, 120, [EOT], id="larger-120-merges"),
        pytest.param(4000, 250, 80, [], id="no-special-tokens"),
        pytest.param(4000, 250, 80, [EOT, "<pad>", "[SEP]"], id="three-special-tokens"),
    ],
)
def test_generated_corpus(submission, reference, rng, n_chars, lexicon_size, merges, specials):
    """Merges and vocabulary match the reference on generated English-like text."""
    text = english_like(rng, n_chars, lexicon_size=lexicon_size, specials=specials)
    run_and_check(submission, reference, text, 256 + len(specials) + merges, specials)


def _tie_heavy(rng, alphabet, n_words, max_len):
    """Short random words, each used once or twice: most pair counts are equal."""
    words = set(alphabet_words(alphabet, max_len)(rng, n_words))
    picked = [w for w in sorted(words) for _ in range(1 + int(rng.random() < 0.3))]
    rng.shuffle(picked)
    return " ".join(picked)


@pytest.mark.parametrize(
    "alphabet, n_words, max_len, merges",
    [
        pytest.param("abcdef", 40, 4, 30, id="small-alphabet"),
        pytest.param("abcdefghijklmnop", 60, 5, 60, id="larger-alphabet"),
        pytest.param("xyzXYZ019!?", 50, 6, 40, id="letters-digits-symbols"),
    ],
)
def test_tie_breaking(submission, reference, rng, alphabet, n_words, max_len, merges):
    """On equal counts the lexicographically greatest pair is merged."""
    text = _tie_heavy(rng, alphabet, n_words, max_len)
    run_and_check(
        submission,
        reference,
        text,
        256 + merges,
        [],
        likely("ties-smallest", "ties-first-seen", "unweighted"),
    )


@pytest.mark.parametrize(
    "char, other",
    [
        pytest.param("a", "bc", id="letter-runs"),
        pytest.param("!", "?.", id="punctuation-runs"),
        pytest.param("7", "12", id="digit-runs"),
    ],
)
def test_overlapping_pairs(submission, reference, rng, char, other):
    """Overlapping pairs all count ("aaa" holds (a, a) twice); merges apply left to right."""
    # Runs of 4, 3 and 5 `char`s against a competing word whose count lies strictly between
    # the run pair's overlapping count (3, 2 and 4 per run) and its non-overlapping count
    # (2, 1 and 2 per run): the first merge is (char, char) only if overlaps are counted.
    # The runs of odd length then tell a left-to-right merge from a right-to-left one.
    fours, threes, fives = (int(n) for n in rng.integers(4, 12, size=3))
    low, high = 2 * fours + threes + 2 * fives, 3 * fours + 2 * threes + 4 * fives
    words = [char * 4] * fours + [char * 3] * threes + [char * 5] * fives
    words += [other] * int(rng.integers(low + 1, high))
    rng.shuffle(words)
    text = " " + " ".join(words)
    run_and_check(
        submission,
        reference,
        text,
        256 + 20,
        [],
        likely("overlaps-once", "merge-right-to-left", "unweighted"),
    )


@pytest.mark.parametrize(
    "specials",
    [
        pytest.param([EOT], id="between-documents"),
        pytest.param(["<sep>", "<|pad|>"], id="two-special-tokens"),
    ],
)
@pytest.mark.parametrize("glued", [pytest.param(False, id="spaced"), pytest.param(True, id="inside-words")])
def test_special_tokens_are_barriers(submission, reference, rng, specials, glued):
    """Special tokens are split out first: no merge inside one, no pair across one."""
    words = lexicon(rng, 60)
    pieces = []
    for _ in range(300):
        pieces.append(_pick(rng, words))
        if rng.random() < 0.3:
            pieces.append(_pick(rng, specials))
    text = ("" if glued else " ").join(pieces)
    run_and_check(
        submission,
        reference,
        text,
        256 + len(specials) + 40,
        specials,
        likely("specials-not-split", "specials-joined", "specials-after-merges"),
    )


def test_overlapping_special_tokens(submission, reference, rng):
    """When one special token starts another, the longest one is split out first."""
    specials = ["<|im|>", "<|im|>user", "<|im|>assistant"]
    words = lexicon(rng, 40)
    turns = []
    for _ in range(80):
        role = _pick(rng, specials)
        turns.append(role + " " + " ".join(_pick(rng, words) for _ in range(int(rng.integers(2, 8)))))
    text = "\n".join(turns)
    run_and_check(
        submission, reference, text, 256 + len(specials) + 30, specials, likely("specials-given-order")
    )


def test_special_token_ids(submission, reference, rng):
    """Special tokens get ids 256, 257, ... in the given order, before the merges."""
    specials = ["<|endoftext|>", "<pad>", "ü<mask>"]
    text = english_like(rng, 2000, lexicon_size=100, specials=specials[:1])
    got = train(submission, text, 256 + len(specials) + 20, specials)
    expect(isinstance(got, tuple) and len(got) == 2, "train_bpe should return a tuple (vocab, merges)")
    vocab = got[0]
    # one check for all of them, in our words only: which special token is wrong, and the hidden
    # tokens themselves, go to the detail (shown in public tests only)
    wrong = [
        i
        for i, token in enumerate(specials)
        if not isinstance(vocab, dict) or vocab.get(256 + i) != token.encode()
    ]
    expect(
        not wrong,
        "the special tokens should have ids 256, 257, ... in the given order, each its UTF-8 bytes",
        detail=f"wrong at ids {[256 + i for i in wrong]}; special tokens {specials}",
        hint="ids 0-255 are the bytes, then the special tokens in the given order, then the merges",
    )
    run_and_check(
        submission, reference, text, 256 + len(specials) + 20, specials, likely("specials-after-merges")
    )


@pytest.mark.parametrize(
    "feature",
    [
        pytest.param("contractions", id="contractions"),
        pytest.param("numbers-punctuation", id="numbers-and-punctuation"),
        pytest.param("whitespace", id="whitespace-runs"),
    ],
)
def test_pretokenization(submission, reference, rng, feature):
    """Pre-tokens are those of the GPT-2 regex, and no pair crosses their boundaries."""
    if feature == "contractions":
        text = english_like(rng, 3000, lexicon_size=120, contractions=0.3, numbers=0.0)
    elif feature == "numbers-punctuation":
        text = english_like(rng, 3000, lexicon_size=120, numbers=0.25, punctuation=0.4)
    else:
        text = english_like(rng, 2000, lexicon_size=120)
        spaces = ["  ", "   ", "\t", "\n", " \n  ", "\n\n\n", "    "]
        text = regex.sub(" ", lambda m: _pick(rng, spaces) if rng.random() < 0.25 else " ", text)
        text += "   \n\n   "
    run_and_check(
        submission,
        reference,
        text,
        256 + 60,
        [],
        likely("whitespace-split", "no-pretokenization", "unweighted"),
    )


ALPHABETS = {
    "accents": "aeiouéèêàçñüöäßlmnrst",
    "greek-cyrillic": "αβγδεζηθικλμνοπρστφωабвгдежзиклмнопрсту",
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道",
}
EMOJI = ["🎉", "👍", "👍🏽", "❤️", "🚀", "😂", "🇫🇷", "✨", "🙂🙂"]


@pytest.mark.parametrize("script", [*ALPHABETS, "emoji"])
def test_unicode(submission, reference, rng, script):
    """Multi-byte UTF-8 text is trained on bytes like any other."""
    if script == "emoji":
        words = lexicon(rng, 150)
        text = text_from(rng, 2500, words, extras=EMOJI, extra_rate=0.15)
    else:
        words = lexicon(rng, 150, alphabet_words(ALPHABETS[script]))
        text = text_from(rng, 1500, words, specials=[EOT])
    specials = [] if script == "emoji" else [EOT]
    run_and_check(submission, reference, text, 256 + len(specials) + 80, specials)


@pytest.mark.parametrize(
    "text, specials",
    [
        pytest.param("", [], id="empty-file"),
        pytest.param("", [EOT], id="empty-file-with-special"),
        pytest.param(EOT * 3, [EOT], id="only-special-tokens"),
        pytest.param("a", [], id="one-character"),
        pytest.param("a\nb\nc\n1\n.", [], id="single-byte-pretokens"),
    ],
)
def test_nothing_to_merge(submission, reference, text, specials):
    """With no pair to merge, the vocabulary holds only the bytes and the special tokens."""
    run_and_check(
        submission, reference, text, 300, specials, likely("specials-after-merges", "no-pretokenization")
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("the cat sat on the mat", id="short-sentence"),
        pytest.param("low lower lowest newer newest " * 5, id="repeated-words"),
        pytest.param("ab<|endoftext|>cd", id="around-a-special-token"),
    ],
)
def test_stops_when_no_pair_is_left(submission, reference, text):
    """Training stops early, with fewer merges than asked, once every pre-token is one token."""
    run_and_check(submission, reference, text, 1000, [EOT])


@pytest.mark.parametrize(
    "vocab_size, specials",
    [
        pytest.param(255, [], id="below-256"),
        pytest.param(0, [], id="zero"),
        pytest.param(257, [EOT, "<pad>"], id="no-room-for-the-special-tokens"),
    ],
)
def test_vocab_size_too_small(submission, vocab_size, specials):
    """A vocab_size below 256 + len(special_tokens) raises ValueError."""
    try:
        train(submission, "hello world", vocab_size, specials)
    except ValueError:
        return
    expect(
        False,
        "train_bpe should raise ValueError when vocab_size is below 256 + len(special_tokens): the "
        "vocabulary cannot even hold the 256 bytes and the special tokens",
        detail=f"vocab_size={vocab_size}, special_tokens={specials}",
    )


def test_vocab_size_with_no_room_for_merges(submission, reference):
    """vocab_size == 256 + len(special_tokens) is allowed: no merges."""
    run_and_check(submission, reference, "hello hello world", 256 + 2, [EOT, "<pad>"])


def test_crlf_line_endings(submission, reference, rng):
    """The file's text is used exactly as it is: "\\r\\n" is not turned into "\\n"."""
    text = english_like(rng, 2500, lexicon_size=100).replace("\n", "\r\n")
    run_and_check(submission, reference, text, 256 + 60, [], likely("newline-translation"))


# --------------------------------------------------------------------------- performance

PERF_CHARS = 160_000
PERF_VOCAB = 450


def perf_corpus(rng):
    return english_like(rng, PERF_CHARS, lexicon_size=12_000, specials=[EOT], numbers=0.06)


@pytest.mark.performance
def test_speed(perf):
    def make(rng):
        data = perf_corpus(rng).encode("utf-8")
        return Call("train_bpe", File(data, "corpus.txt"), PERF_VOCAB, [EOT])

    perf.measure(
        "speed",
        make,
        hint="recounting every pair after each merge? Keep the pair counts and an index from each pair "
        "to the words that contain it; after a merge, update only those words.",
    )
