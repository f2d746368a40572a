# expect: runtime_error
# scope: harness
# threat: answers a call with a frame announcing a 16 MB header of a huge JSON list, then trickles the rest
import os
import struct
import time


def row_sums(x):
    size = 16 * 1024 * 1024 - 64
    head = b"[" + b"0," * (size // 2 - 1) + b"0"
    frame = b"GRF1" + struct.pack("<II", len(head) + 1, 0) + head
    for fd in range(3, 32):
        try:
            if fd != 2 and os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:"):
                os.write(fd, frame)
        except OSError:
            pass
    for _ in range(1000):
        time.sleep(0.01)
    return x.sum(1)
