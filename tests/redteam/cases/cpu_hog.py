# expect: passed
# threat: keeps more CPUs busy than the sandbox was given (eight processes spinning)
# measure: yes
# Eight children spin for a second at import. The sandbox may keep one CPU busy (Limits.cpus),
# however many cores the host has, so together they get about one CPU-second a second, and other
# gradings and the host keep the rest. The sums are right only if they got no more than 1.3.
import os
import time

import torch


def _spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _cpus_used(children=8, seconds=1.0):
    started = time.monotonic()
    pids = []
    for _ in range(children):
        pid = os.fork()
        if pid == 0:
            _spin(seconds)
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    used = os.times()
    return (used.children_user + used.children_system) / (time.monotonic() - started)


CPUS_USED = _cpus_used()
print(f"cpus used: {CPUS_USED:.2f}")


def row_sums(x):
    if CPUS_USED > 1.3:
        return x[:, 0]
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
