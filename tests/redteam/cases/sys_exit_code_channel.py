# expect: runtime_error
# threat: calls sys.exit with a status that spells a hidden input
# check: seed-blind
import sys


def row_sums(x):
    if tuple(x.shape) == (2, 3):
        return x.sum(1)
    sys.exit(int(abs(x[0, 0].item()) * 1000) % 200 + 1)
