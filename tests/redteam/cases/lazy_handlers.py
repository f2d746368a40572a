# expect: failed
# scope: harness
# threat: rewires the runner's block handler to answer at once and compute in the background,
#         so that the timed window looks empty
# measure: yes
import sys
import threading

import torch

server = sys.modules["grader.runner.server"]
messages = sys.modules["grader.runner.messages"]


def lazy_block(self, request):
    calls = request.calls
    module = self.resolve(0)
    threading.Thread(
        target=lambda: [getattr(module, a)(*args, **kw) for _, a, args, kw in calls], daemon=True
    ).start()
    return messages.Value([torch.zeros(args[0].shape[0]) for _, _, args, _ in calls])  # before any work


server.HANDLERS[messages.Op.BLOCK] = lazy_block


def row_sums(x):
    total = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            total += float(x[i, j])  # slow on purpose
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
