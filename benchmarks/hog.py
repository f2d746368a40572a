"""Keep cores busy, as other work on a shared grading host would: `python benchmarks/hog.py N`
spins N processes until it is stopped (SIGTERM or SIGINT stops them all; N defaults to 1). Run a
check beside it to see that its verdicts and tests do not depend on how busy the machine is."""

from __future__ import annotations

import os
import signal
import sys


def spin() -> None:
    x = 0
    while True:
        x = (x * 31 + 7) % 1_000_003


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    children = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            spin()
        children.append(pid)

    def stop(signum: int, frame: object) -> None:
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in children:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
