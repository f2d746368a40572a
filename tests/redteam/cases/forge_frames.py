# expect: failed
# threat: finds the protocol descriptor and writes a forged answer before returning
import os

FORGED = b'{"ok":true,"reply":"value","value":"PASSED"}'
FRAME = b"GRF1" + len(FORGED).to_bytes(4, "little") + (0).to_bytes(4, "little") + FORGED


def row_sums(x):
    for fd in range(3, 16):
        try:
            os.write(fd, FRAME)
        except OSError:
            pass
    return x[:, 0]
