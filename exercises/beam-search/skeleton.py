"""Beam search over a bigram table of log-probabilities.

Write `beam_search` as README.md describes it. Every convention the tests check is stated there.
"""

import torch


def beam_search(
    logprobs: torch.Tensor,
    prompt_last_token: int,
    num_beams: int,
    max_new_tokens: int,
    eos_id: int,
    length_penalty: float = 1.0,
    early_stopping: bool = True,
) -> list[tuple[list[int], float]]:
    """Beam search with length-normalised scores, as Hugging Face's beam search ranks hypotheses.

    Args:
        logprobs: a (V, V) float tensor (float32 or float64); logprobs[a, b] is the log-probability
            of token b right after token a (the model is a bigram table). Rows need not be
            normalised: any finite values. Read it only: never modify it in place.
        prompt_last_token: the last token of the prompt, in [0, V); the first step reads its row.
        num_beams: the number of live beams, and of finished hypotheses kept; 1 <= num_beams <= V - 1.
        max_new_tokens: the most steps (new tokens per hypothesis); at least 1.
        eos_id: the end-of-sequence token, in [0, V).
        length_penalty: a hypothesis's score is sum_logprobs / length ** length_penalty, where
            length is the number of new tokens it holds, EOS included (prompt excluded).
        early_stopping: True: stop as soon as num_beams hypotheses are finished (and return only
            them); False: always run max_new_tokens steps, then add the live beams.

    Returns:
        The finished hypotheses (at most num_beams), best score first, ties in the order they were
        added: a list of (tokens, score), tokens a list of Python ints (the new tokens only, ending
        with eos_id when the hypothesis finished on EOS), score a Python float. All arithmetic in
        float64.
    """
    raise NotImplementedError
