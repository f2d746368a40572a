# expect: failed
# threat: takes a time proportional to a hidden input, so that a per-test duration spells it
# check: seed-blind
import time


def row_sums(x):
    if tuple(x.shape) == (2, 3):
        return x.sum(1)
    time.sleep(abs(x[0, 0].item()) % 1.0 * 0.4)
    return x.sum(1) + 1
