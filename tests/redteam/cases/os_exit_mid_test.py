# expect: runtime_error
# threat: os._exit(0) in the middle of a test
import os


def row_sums(x):
    os._exit(0)
