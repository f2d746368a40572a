# expect: memory_limit
# threat: allocates 100 GB of bytes
def row_sums(x):
    return b"x" * (100 * 1024**3)
