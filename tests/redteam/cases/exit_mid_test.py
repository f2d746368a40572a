# expect: runtime_error
# threat: sys.exit(0) in the middle of a test
import sys


def row_sums(x):
    sys.exit(0)
