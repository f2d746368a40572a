# expect: runtime_error
# threat: fills the disk
def row_sums(x):
    with open("/work/filler", "wb") as f:
        while True:
            f.write(b"\0" * (1 << 20))
