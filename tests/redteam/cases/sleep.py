# expect: timeout
# threat: time.sleep(1e9)
import time


def row_sums(x):
    time.sleep(1e9)
