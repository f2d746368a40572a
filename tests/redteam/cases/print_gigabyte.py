# expect: output_limit
# threat: prints a gigabyte
import sys


def row_sums(x):
    line = "x" * (1 << 20)
    for _ in range(1024):
        sys.stdout.write(line)
