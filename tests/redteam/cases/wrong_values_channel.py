# expect: failed
# scope: harness
# threat: wrong values whose number and position spell the hidden inputs; a list of a telling length
# check: seed-blind
def row_sums(x):
    out = x.sum(1)
    if tuple(x.shape) == (2, 3):
        return out
    if x.shape[0] % 2:
        return [0.0] * (int(abs(x[0, 0].item()) * 1000) % 50)
    first = int(abs(x[0, 0].item()) * 1000) % out.numel()
    out[first:] += 1.0
    return out
