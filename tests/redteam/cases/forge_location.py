# expect: failed
# scope: harness
# threat: raises from a code object whose name and first line it rewrote to spell the hidden inputs
# check: seed-blind
import types


def _boom():
    raise IndexError("boom")


def row_sums(x):
    if tuple(x.shape) == (2, 3):  # the public test: its inputs are public anyway
        return x.sum(1)
    values = [int(abs(v) * 1000) for v in x.flatten()[:4].tolist()]
    code = _boom.__code__.replace(
        co_name="LEAK_" + "_".join(map(str, values)), co_firstlineno=values[0] % 5000 + 1
    )
    types.FunctionType(code, globals())()
