# expect: timeout
# threat: waits for input() that never comes
def row_sums(x):
    return input()
