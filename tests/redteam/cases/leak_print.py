# expect: failed
# threat: prints the hidden inputs, hoping to read them in the verdict's output
# check: no-leak-in-output
# check: seed-blind
def row_sums(x):
    print("LEAK", x.tolist())
    return x[:, 0]
