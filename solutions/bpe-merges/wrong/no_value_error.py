# expect: failed
# why: trains happily when vocab_size cannot even hold the bytes and the special tokens
# caught-by: test_vocab_size_too_small
from collections import Counter, defaultdict
from itertools import pairwise

import regex

# GPT-2's pre-tokenizer: contractions, letters, digits, other symbols (each with an optional
# leading space), then runs of whitespace. Merges never cross the boundaries it draws.
GPT2_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
PRETOKEN = regex.compile(GPT2_SPLIT)

Pair = tuple[bytes, bytes]


def pretokenize(text: str, special_tokens: list[str]) -> Counter[str]:
    """How often each pre-token occurs, with the special tokens cut out of the text first."""
    chunks = [text]
    if special_tokens:
        # longest first: of two specials that start at the same place, the longer one wins
        ordered = sorted(special_tokens, key=len, reverse=True)
        chunks = regex.split("|".join(regex.escape(t) for t in ordered), text)
    counts: Counter[str] = Counter()
    for chunk in chunks:  # specials are gone: no pre-token (so no pair) spans one
        counts.update(PRETOKEN.findall(chunk))
    return counts


def merge_word(word: tuple[bytes, ...], pair: Pair, new: bytes) -> tuple[bytes, ...]:
    """Replace each occurrence of `pair` in `word` by `new`, left to right, without overlap."""
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train_bpe(
    input_path: str, vocab_size: int, special_tokens: list[str]
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train byte-level BPE on the UTF-8 file at `input_path`; returns (vocab, merges).
    The conventions (ids, ties, overlaps, special tokens) are those of the lesson."""
    n_merges = vocab_size - 256 - len(special_tokens)

    # ids: the 256 bytes, then the specials in the given order, then one per merge
    vocab = {i: bytes([i]) for i in range(256)}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")

    with open(input_path, encoding="utf-8", newline="") as f:  # newline="": keep "\r" as it is
        text = f.read()

    # Each distinct pre-token is a "word": a tuple of byte strings, and how often it occurs.
    # A word of one byte has no pair, so it can never take part in a merge.
    words: list[tuple[bytes, ...]] = []
    freqs: list[int] = []
    for token, freq in pretokenize(text, special_tokens).items():
        raw = token.encode("utf-8")
        if len(raw) > 1:
            words.append(tuple(bytes([b]) for b in raw))
            freqs.append(freq)

    # Count every adjacent pair, just this once, weighted by the word's frequency. Overlaps
    # count: (a, a) occurs twice in "aaa". `where` remembers which words hold each pair.
    counts: defaultdict[Pair, int] = defaultdict(int)
    where: defaultdict[Pair, set[int]] = defaultdict(set)
    for i, (word, freq) in enumerate(zip(words, freqs, strict=True)):
        for pair in pairwise(word):
            counts[pair] += freq
            where[pair].add(i)

    merges: list[Pair] = []
    for _ in range(n_merges):
        if not counts:
            break  # every word is a single token: nothing left to merge
        # highest count; among equal counts the lexicographically greatest pair
        best = max(counts, key=lambda p: (counts[p], p))
        new = best[0] + best[1]
        merges.append(best)
        vocab[len(vocab)] = new

        # Only the words that contain `best` change. Take each one's pairs out of the counts,
        # merge it, and put the new pairs back: every other word's pairs are untouched.
        # (`where` may list words that lost the pair since; for them this is a no-op.)
        for i in where.pop(best):
            word, freq = words[i], freqs[i]
            for pair in pairwise(word):
                counts[pair] -= freq
                if counts[pair] == 0:
                    del counts[pair]
            word = merge_word(word, best, new)
            words[i] = word
            for pair in pairwise(word):
                counts[pair] += freq
                where[pair].add(i)

    return vocab, merges
