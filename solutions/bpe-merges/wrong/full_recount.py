# expect: too_slow
# why: recounts every pair of every word after each merge instead of updating the affected words
# caught-by: test_speed
from collections import Counter
from itertools import pairwise

import regex

PRETOKEN = regex.compile(r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def train_bpe(input_path, vocab_size, special_tokens):
    n_merges = vocab_size - 256 - len(special_tokens)
    if n_merges < 0:
        raise ValueError("vocab_size too small")
    vocab = {i: bytes([i]) for i in range(256)}
    for token in special_tokens:
        vocab[len(vocab)] = token.encode("utf-8")
    with open(input_path, encoding="utf-8", newline="") as f:
        text = f.read()
    chunks = [text]
    if special_tokens:
        ordered = sorted(special_tokens, key=len, reverse=True)
        chunks = regex.split("|".join(regex.escape(t) for t in ordered), text)
    freq = Counter()
    for chunk in chunks:
        freq.update(PRETOKEN.findall(chunk))
    words = {tuple(bytes([b]) for b in w.encode("utf-8")): f for w, f in freq.items()}

    merges = []
    for _ in range(n_merges):
        # count every pair from scratch
        counts = Counter()
        for word, f in words.items():
            for pair in pairwise(word):
                counts[pair] += f
        if not counts:
            break
        best = max(counts, key=lambda p: (counts[p], p))
        new = best[0] + best[1]
        merges.append(best)
        vocab[len(vocab)] = new
        merged = {}
        for word, f in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == best[0] and word[i + 1] == best[1]:
                    out.append(new)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] = f
        words = merged
    return vocab, merges
