# expect: failed
# scope: harness
# threat: picks which of its own lines raises from a hidden input, so that the reported line spells it
# check: one-location
def row_sums(x):
    if tuple(x.shape) == (2, 3):
        return x.sum(1)
    pick = int(abs(x[0, 0].item()) * 1000) % 4
    if pick == 0:
        raise IndexError("0")
    if pick == 1:
        raise IndexError("1")
    if pick == 2:
        raise IndexError("2")
    raise IndexError("3")
