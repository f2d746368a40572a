# expect: memory_limit
# threat: allocates memory in chunks until something stops it
def row_sums(x):
    chunks = []
    while True:
        chunks.append(bytearray(b"x" * (32 << 20)))
