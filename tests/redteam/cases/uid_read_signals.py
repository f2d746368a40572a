# expect: passed
# threat: reads what other sandboxes hold of a per-user kernel counter (queued signals, SigQ)
# It queues no signal, so the count it reads at import is 0 if it is its own; the sums carry the
# count, so they are right only then. tests/integration/test_isolation.py grades it while uid_fill_signals.py
# holds a full queue in another live sandbox: with one uid for all sandboxes, it would read that.
import torch


def queued_signals():
    """(count, limit) of queued signals of this uid: SigQ in /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("SigQ:"):
                count, limit = line.split()[1].split("/")
                return int(count), int(limit)
    raise RuntimeError("no SigQ line")


COUNT = queued_signals()[0]


def row_sums(x):
    return x @ torch.ones(x.shape[1], dtype=x.dtype) + COUNT
