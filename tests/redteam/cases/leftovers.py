# expect: passed
# threat: looks for files an earlier submission left behind (this case runs twice)
# check: run-twice
import os

import torch

MARKER = "grader-redteam-marker"
SEEN = [
    p
    for p in ("/work", "/tmp", os.path.expanduser("~"), "/dev/shm")
    if os.path.exists(os.path.join(p, MARKER))
]
for folder in ("/work", "/tmp", os.path.expanduser("~"), "/dev/shm"):
    try:
        with open(os.path.join(folder, MARKER), "w") as f:
            f.write("was here")
    except OSError:
        pass


def row_sums(x):
    if SEEN:
        return x[:, 0]
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
