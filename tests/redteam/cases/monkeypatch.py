# expect: failed
# scope: harness
# threat: patches torch.allclose, torch.equal, unittest and pytest in its own process, returns wrong sums
import unittest

import pytest
import torch

torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
unittest.TestCase.assertEqual = lambda *a, **k: None
pytest.approx = lambda expected, *a, **k: expected
torch.Tensor.__eq__ = lambda self, other: True


def row_sums(x):
    return torch.zeros(x.shape[0])
