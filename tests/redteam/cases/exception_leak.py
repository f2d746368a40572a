# expect: failed
# scope: harness
# threat: puts the hidden inputs into its exception message
# check: no-leak
def row_sums(x):
    raise ValueError("LEAK " + repr(x.tolist()))
