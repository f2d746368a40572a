"""KL estimators: Schulman's k1, k2 and k3 from the log-probabilities of sampled tokens, and the
per-token KL penalty folded into PPO's rewards. Read README.md first: it explains every convention
used here.
"""

import torch


def kl_estimate(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-sample estimates of KL(q || p_ref), elementwise, from samples x ~ q (the policy).

    logprobs: log q(x), the POLICY's log-probabilities of its sampled tokens (any shape).
    ref_logprobs: log p_ref(x), the REFERENCE model's log-probabilities of the same tokens (same shape).
    Both are log-probabilities, never probabilities. With log r = ref_logprobs - logprobs:

        "k1": -log r                   (unbiased)
        "k2": (log r) ** 2 / 2         (biased)
        "k3": (r - 1) - log r          (unbiased, and >= 0)

    Any other estimator raises ValueError.

    The result has the inputs' shape and dtype (float32, float64, float16 or bfloat16). k3 must be
    >= 0 at every element in every dtype (exactly 0 where logprobs == ref_logprobs): compute r - 1
    as torch.expm1(log r), never exp(log r) - 1, which rounds below zero near r = 1; clamping the
    result at 0 is allowed. Gradients flow to both inputs. Leave the inputs as they were.
    """
    raise NotImplementedError("kl_estimate: k1, k2 or k3 from log r = ref_logprobs - logprobs")


def kl_penalty_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    response_mask: torch.Tensor,
    beta: float = 0.05,
    estimator: str = "k1",
) -> torch.Tensor:
    """PPO's per-token rewards: the KL penalty on every response token, the score at the last one.

    scores: (B,), one reward-model score per sequence.
    logprobs, ref_logprobs: (B, T), the policy's and the reference's log-probs of the sampled tokens.
    response_mask: (B, T) bool, True on the response tokens (contiguous, at least one per row);
        False on the prompt before them and the padding after them.

    Returns (B, T) rewards in the log-probs' dtype:
        -beta * kl_estimate(logprobs, ref_logprobs, estimator)   where response_mask is True,
        exactly 0                                                 where it is False (whatever the
                                                                  log-probs hold there: any finite
                                                                  numbers; select, never multiply),
        plus scores[b] at the LAST True position of row b (once; not at every token, not at T - 1).
    Leave the inputs as they were.
    """
    raise NotImplementedError("kl_penalty_rewards: -beta * kl on the response, plus the score at its end")
