# expect: failed
# scope: harness
# threat: raises what the trusted side cannot rebuild: a group, a raising __str__, a cycle of causes
# check: seed-blind
class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no")


def row_sums(x):
    if tuple(x.shape) == (2, 3):
        return x.sum(1)
    if x.shape[0] % 2:
        raise ExceptionGroup("LEAK", [ValueError(repr(x.tolist()))])
    a, b = ValueError("LEAK a"), ValueError("LEAK b")
    a.__cause__, b.__cause__ = b, a
    if x[0, 0] > 0:
        raise a
    raise Unprintable()
