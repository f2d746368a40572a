# expect: runtime_error
# threat: exits with a status that spells a hidden input
# check: seed-blind
import os


def row_sums(x):
    if tuple(x.shape) == (2, 3):
        return x.sum(1)
    os._exit(int(abs(x[0, 0].item()) * 1000) % 200 + 1)
