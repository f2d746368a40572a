# expect: passed
# threat: fills its per-user count of queued signals (RLIMIT_SIGPENDING), a counter the kernel keeps per uid
# A child of the submission blocks a real-time signal and queues it to itself until the kernel
# refuses more (or 200000). Every process of the same uid on the host shares that count: were
# all sandboxes one uid, a grading running meanwhile would read it in its /proc/self/status
# (uid_read_signals.py) and could queue no signal of its own. Each live runner has a uid of its
# own, so the count stays this runner's. The sums are right only if the queue did fill.
# tests/integration/test_isolation.py grades uid_read_signals.py while this one is live.
import ctypes
import os
import signal
import time

import torch


def queued_signals():
    """(count, limit) of queued signals of this uid: SigQ in /proc/self/status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("SigQ:"):
                count, limit = line.split()[1].split("/")
                return int(count), int(limit)
    raise RuntimeError("no SigQ line")


def _fill(most):
    libc = ctypes.CDLL(None, use_errno=True)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGRTMIN})
    queued = 0
    while queued < most and libc.sigqueue(os.getpid(), int(signal.SIGRTMIN), ctypes.c_long(0)) == 0:
        queued += 1
    return queued


_read, _write = os.pipe()
if os.fork() == 0:  # the child keeps the signals pending until the sandbox is killed
    os.close(_read)
    os.write(_write, str(_fill(min(queued_signals()[1], 200_000))).encode())
    os.close(_write)
    while True:
        time.sleep(60)
os.close(_write)
QUEUED = int(os.read(_read, 64) or b"0")
os.close(_read)


def row_sums(x):
    if QUEUED < 1000:
        return x[:, 0]
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
