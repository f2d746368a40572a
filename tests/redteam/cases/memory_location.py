# expect: memory_limit
# scope: harness
# threat: raises MemoryError from a renamed, moved code object: the memory_limit summary spells the inputs
# check: seed-blind
import types


def _out_of_memory():
    raise MemoryError("LEAK")


def row_sums(x):
    if tuple(x.shape) == (2, 3):
        return x.sum(1)
    values = [int(abs(v) * 1000) for v in x.flatten()[:8].tolist()]
    code = _out_of_memory.__code__.replace(
        co_name="LEAK_" + "_".join(map(str, values)), co_firstlineno=values[0] % 5000 + 1
    )
    types.FunctionType(code, globals())()
