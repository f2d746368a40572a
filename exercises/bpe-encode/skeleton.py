"""Encoding and decoding with a trained byte-level BPE tokenizer.

Save this file as tokenizer.py and fill in the methods of Tokenizer. Read README.md first: it
explains every convention used here.
"""

from collections.abc import Iterable, Iterator

# GPT-2's pre-tokenizer. Use it with the third-party `regex` module (`import regex`; the standard
# `re` does not know \p{L}): regex.findall(GPT2_SPLIT, text) gives the pre-tokens of `text`.
GPT2_SPLIT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


class Tokenizer:
    def __init__(
        self,
        vocab: dict[int, bytes],
        merges: list[tuple[bytes, bytes]],
        special_tokens: list[str] | None = None,
    ) -> None:
        """A tokenizer from the output of BPE training.

        vocab:          token id -> the bytes it stands for (ids 0..255 are the single bytes).
        merges:         the learned merges, in the order they were learned: merges[r] has rank r.
        special_tokens: strings that always become one id each (None: no special tokens). A
                        special token whose UTF-8 bytes are not in vocab is added with the next
                        free id, max(vocab) + 1, in the order given (not len(vocab): the ids of
                        vocab may have gaps).

        Leave the arguments as they are: add the missing special tokens to a copy of vocab.

        Build what encoding needs here, once: a dict from each merge pair to its rank, the
        inverse of vocab (bytes -> id), and whatever you use to split out the special tokens.
        """
        raise NotImplementedError("Tokenizer.__init__: keep the vocabulary and build the lookups")

    def encode(self, text: str) -> list[int]:
        """The token ids of `text`.

        1. Split the special tokens out of the text (where several match at the same place, the
           longest wins); each one is a single id.
        2. Cut each piece of text between them into pre-tokens with GPT2_SPLIT.
        3. In each pre-token (as a list of single bytes), repeatedly merge every occurrence (left
           to right, without overlap) of the adjacent pair of lowest rank, until no adjacent pair
           is a merge; then map each token's bytes to its id.

        Example (the README's merges): encode("lowest newest nest") == [259, 257, 263, 32, 110, 257]
        """
        raise NotImplementedError("Tokenizer.encode: apply the merges by rank in each pre-token")

    def decode(self, ids: list[int]) -> str:
        """The text of `ids`: the bytes of all the tokens joined, then decoded once as UTF-8 with
        errors="replace" (a broken sequence becomes U+FFFD, never an exception)."""
        raise NotImplementedError("Tokenizer.decode: join the bytes, then decode them once")

    def encode_iterable(self, iterable: Iterable[str]) -> Iterator[int]:
        """Yield the ids of "".join(iterable), exactly those of encode, but lazily: read the
        iterable (for example an open file, which yields lines) one chunk at a time and yield ids
        as soon as they are certain, holding only the end of the text that is not encoded yet.

        A word, a contraction, a whitespace run or a special token may continue in the next
        chunk: see the README for a rule that tells which pieces are safe to encode.
        """
        raise NotImplementedError("Tokenizer.encode_iterable: a generator that buffers the unsafe end")


def encode_text(
    vocab: dict[int, bytes],
    merges: list[tuple[bytes, bytes]],
    text: str,
    special_tokens: list[str] | None = None,
) -> list[int]:
    """Tokenizer(vocab, merges, special_tokens).encode(text), in one call. Keep it as it is: the
    speed test calls it."""
    return Tokenizer(vocab, merges, special_tokens).encode(text)
