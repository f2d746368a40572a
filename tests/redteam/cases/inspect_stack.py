# expect: passed
# threat: walks inspect.stack() and the heap for the expected values; returns wrong sums if found
import gc
import inspect

import torch

FOUND = []


def row_sums(x):
    mine = x @ torch.ones(x.shape[1], dtype=x.dtype)
    if len(FOUND) < 3:  # searching the heap is slow: look during the correctness tests only
        for frame in inspect.stack():
            names = set(frame.frame.f_locals) | set(frame.frame.f_globals)
            FOUND.extend(n for n in names if n in ("expected", "reference", "want", "answer"))
        FOUND.extend(
            id(o)
            for o in gc.get_objects()
            if isinstance(o, torch.Tensor)
            and o is not mine
            and o.shape == mine.shape
            and torch.equal(o, mine)
        )
        FOUND.append(None)
    if any(f is not None for f in FOUND):
        return x[:, 0]
    return mine
