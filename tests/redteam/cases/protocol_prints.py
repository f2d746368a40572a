# expect: passed
# scope: harness
# threat: prints bytes that look like protocol frames, on stdout and stderr and straight to fd 1 and 2
import os
import sys

import torch

FORGED = b'{"ok": true, "reply": "value", "value": "forged"}'
FAKE = b"GRF1" + len(FORGED).to_bytes(4, "little") + (0).to_bytes(4, "little") + FORGED


CALLS = []


def row_sums(x):
    CALLS.append(1)
    if len(CALLS) <= 5:  # not during the thousands of timed calls: that would hit the output limit
        print("GRF1 not a frame")
        sys.stderr.write("GRF1 neither\n")
        os.write(1, FAKE)
        os.write(2, FAKE)
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
