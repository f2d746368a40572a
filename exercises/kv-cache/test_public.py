"""Public tests: incremental decoding must give exactly the logits of the full forward pass.

Run them with `grader test kv-cache decode.py`.
"""

import functools
import importlib.util
from pathlib import Path

import torch

from grader.testing import assert_close, expect

VOCAB = 64


def make_params(seed, vocab=VOCAB, d_model=32, n_head=2, n_layer=2, d_mlp=128):
    """A small random model in the layout the skeleton describes."""
    g = torch.Generator().manual_seed(seed)

    def w(*shape, std):
        return torch.randn(*shape, generator=g) * std

    C = d_model
    layers = [
        {
            "attn_norm": 1 + 0.1 * w(C, std=1.0),
            "wq": w(C, C, std=C**-0.5),
            "wk": w(C, C, std=C**-0.5),
            "wv": w(C, C, std=C**-0.5),
            "wo": w(C, C, std=C**-0.5),
            "mlp_norm": 1 + 0.1 * w(C, std=1.0),
            "w_up": w(C, d_mlp, std=C**-0.5),
            "w_down": w(d_mlp, C, std=d_mlp**-0.5),
        }
        for _ in range(n_layer)
    ]
    return {
        "n_head": n_head,
        "wte": w(vocab, C, std=1.0),
        "layers": layers,
        "norm_f": 1 + 0.1 * w(C, std=1.0),
        "lm_head": w(C, vocab, std=C**-0.5),
    }


@functools.cache
def given_model():
    """The skeleton's module, loaded here for its given model."""
    spec = importlib.util.spec_from_file_location("given_model", Path(__file__).with_name("skeleton.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def forward(params, tokens):
    """The full forward pass, computed here with the given model of the skeleton."""
    return given_model().forward(params, tokens)


TOL = {"rtol": 1e-4, "atol": 1e-4}  # the same arithmetic in a different order: rounding only


def test_prefill_matches_forward(submission):
    """prefill's logits are the full forward pass's: (B, T, vocab)."""
    params = make_params(0)
    tokens = torch.randint(0, VOCAB, (2, 7))
    result = submission.prefill(params, tokens)
    expect(isinstance(result, tuple) and len(result) == 2, "prefill must return a tuple (logits, cache)")
    logits, _ = result
    assert_close(logits, forward(params, tokens), **TOL, what="prefill's logits")


def test_one_step_after_prefill(submission):
    """Prefill 5 tokens, then decode the 6th: its logits are position 5 of the full pass."""
    params = make_params(1)
    tokens = torch.randint(0, VOCAB, (2, 6))
    _, cache = submission.prefill(params, tokens[:, :5])
    logits, _ = submission.decode_step(params, tokens[:, 5:], cache)
    expect(
        tuple(logits.shape) == (2, 1, VOCAB),
        f"decode_step's logits have shape {tuple(logits.shape)}; "
        f"expected (2, 1, {VOCAB}) = (B, T_new, vocab)",
    )
    assert_close(
        logits,
        forward(params, tokens)[:, 5:],
        **TOL,
        what="the logits of the decoded token",
        hint="the new token is at position 5 (the cache holds positions 0..4): rotate its query and key "
        "at position 5, and let it attend to the 5 cached keys and to itself",
    )


def test_several_single_steps(submission):
    """Prefill 3 tokens, then 6 steps of one token each, passing the cache along."""
    params = make_params(2)
    tokens = torch.randint(0, VOCAB, (3, 9))
    full = forward(params, tokens)
    _, cache = submission.prefill(params, tokens[:, :3])
    for t in range(3, 9):
        logits, cache = submission.decode_step(params, tokens[:, t : t + 1], cache)
        assert_close(
            logits,
            full[:, t : t + 1],
            **TOL,
            what=f"the logits at position {t}",
            hint=f"the token decoded here is at position {t}, after the {t} cached positions; the "
            "cache you return must hold every position so far, keys already rotated",
        )


def test_chunk_of_three(submission):
    """Prefill 4 tokens, then decode a chunk of 3 at once: new token i sees the cache and new tokens 0..i."""
    params = make_params(3)
    tokens = torch.randint(0, VOCAB, (2, 7))
    _, cache = submission.prefill(params, tokens[:, :4])
    logits, _ = submission.decode_step(params, tokens[:, 4:], cache)
    assert_close(
        logits,
        forward(params, tokens)[:, 4:],
        **TOL,
        what="the logits of the chunk",
        hint="the new tokens are at positions 4, 5, 6 (rotate their queries and keys there), and the "
        "mask over the 4 cached + 3 new keys is bottom-right: new token i sees keys 0 .. 4 + i, "
        "torch.ones(3, 7, dtype=torch.bool).tril(diagonal=4)",
    )


def test_decode_all(submission):
    """The given driver decode_all (prefill, then one token at a time) reproduces the full pass."""
    params = make_params(4)
    tokens = torch.randint(0, VOCAB, (2, 12))
    assert_close(submission.decode_all(params, tokens, 4), forward(params, tokens), **TOL)
