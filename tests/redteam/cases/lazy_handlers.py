# expect: failed
# threat: rewires the runner's block handler to answer at once and compute in the background,
#         so that the timed window looks empty
import sys
import threading

import torch

server = sys.modules["grader.runner.server"]


def lazy_block(self, header, decoder):
    calls = decoder.decode(header["calls"])
    module = self.resolve(0)
    threading.Thread(
        target=lambda: [getattr(module, a)(*args, **kw) for a, args, kw in calls], daemon=True
    ).start()
    return {"value": [torch.zeros(args[0].shape[0]) for _, args, _ in calls]}  # answered before any work


server.OPS["block"] = lazy_block


def row_sums(x):
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            total += float(x[i, j])  # slow on purpose
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
