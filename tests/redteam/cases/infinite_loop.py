# expect: timeout
# threat: while True: pass
def row_sums(x):
    while True:
        pass
