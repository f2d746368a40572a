"""Training a byte-level BPE tokenizer. Save this file as bpe.py and fill in train_bpe."""

# GPT-2's pre-tokenizer. Use it with the third-party `regex` module (`import regex`; the standard
# `re` does not know \p{L}): regex.findall(GPT2_SPLIT, text) gives the pre-tokens of `text`.
GPT2_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def train_bpe(
    input_path: str, vocab_size: int, special_tokens: list[str]
) -> tuple[dict[int, bytes], list[tuple[bytes, bytes]]]:
    """Train a byte-level BPE tokenizer on the UTF-8 text file at `input_path`.

    Returns `(vocab, merges)`:
      vocab:  dict[int, bytes], every token id and the bytes it stands for
      merges: list[tuple[bytes, bytes]], the merged pairs in the order they were learned

    Conventions (the tests check every one):

    1. Input. Read the whole file and decode it as UTF-8, exactly as it is: no newline
       translation (`open(input_path, encoding="utf-8", newline="")`, or read the bytes and
       `.decode("utf-8")`), so "\\r\\n" stays "\\r\\n".
    2. Special tokens are split out of the text first, before anything else. Where two of them
       could match at the same place, the longest wins (split on them longest first). They
       never take part in merges: no pair is ever counted inside a special token or across one
       (the text before and after a special token is never joined).
    3. Pre-tokenisation: each piece of text between special tokens is split with the GPT-2
       regex GPT2_SPLIT (module `regex`). A pre-token is a sequence of bytes (its UTF-8
       encoding); pairs never cross pre-token boundaries.
    4. Vocabulary ids: 0..255 are the single bytes (id i -> bytes([i])), then the special
       tokens in the given order (their UTF-8 bytes), then one new token per merge, in merge
       order (the token of merge (a, b) is a + b).
    5. vocab_size counts all of them: the number of merges is
       vocab_size - 256 - len(special_tokens). Stop early when no pair is left to merge.
       A vocab_size smaller than 256 + len(special_tokens) raises ValueError.
    6. Counting: the count of a pair is the sum, over pre-tokens, of how often the pair occurs
       in it times how often the pre-token occurs in the text. Overlapping occurrences all
       count: the pre-token "aaa" holds (b"a", b"a") twice.
    7. Merging: in each pre-token, occurrences of the chosen pair are replaced left to right,
       without overlap: "aaa" becomes [b"aa", b"a"].
    8. Ties: among the pairs with the highest count, merge the lexicographically greatest
       (bytes, bytes) pair, comparing tuples of bytes as Python does:
       max(counts, key=lambda pair: (counts[pair], pair)).

    Speed matters: after each merge, update the pair counts of the words that contain the
    merged pair only; recounting every pair of every word after each merge is too slow.
    """
    raise NotImplementedError("train_bpe: learn the merges (see the lesson in README.md)")
