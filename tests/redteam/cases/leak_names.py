# expect: failed
# scope: harness
# threat: smuggles the hidden inputs out through an exception class name and a returned object's class name
# check: no-leak
def row_sums(x):
    name = "LEAK_" + "_".join(
        f"{v:.3f}".replace("-", "m").replace(".", "p") for v in x.flatten()[:6].tolist()
    )
    if x.shape[0] % 2:
        raise type(name, (ValueError,), {})("boom")
    return type(name, (), {})()
