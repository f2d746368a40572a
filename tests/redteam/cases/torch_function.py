# expect: failed
# scope: harness
# threat: returns a tensor subclass whose __torch_function__ answers every comparison with True
import torch


class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func.__name__ in ("__eq__", "allclose", "equal", "isclose", "eq"):
            return True
        return super().__torch_function__(func, types, args, kwargs or {})


def row_sums(x):
    return torch.zeros(x.shape[0]).as_subclass(Liar)
