# expect: passed
# threat: forks a daemon at import that outlives the call and the sandbox
# check: no-processes
import os
import time

import torch

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            time.sleep(1)
    os._exit(0)


def row_sums(x):
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
