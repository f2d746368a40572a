"""Keep cores busy, as other work on a shared grading host would: `python benchmarks/hog.py N`
spins N processes until killed (N defaults to 1). Run a check beside it to see that its verdicts
and tests do not depend on how busy the machine is."""

from __future__ import annotations

import multiprocessing
import sys


def spin() -> None:
    x = 0
    while True:
        x = (x * 31 + 7) % 1_000_003


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    workers = [multiprocessing.Process(target=spin, daemon=True) for _ in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()
