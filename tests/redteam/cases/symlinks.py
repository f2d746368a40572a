# expect: passed
# threat: plants symlinks where a host might read, write or clean up, and reads host secrets through them
# check: host-untouched
import os

import torch

TARGETS = {
    "/work/results.json": "/etc/shadow",
    "/work/escape": "/",
    "/tmp/host": "{{CANARY}}",
    "/work/verdict.json": "{{CANARY}}",
}
READ = []
for link, target in TARGETS.items():
    try:
        os.symlink(target, link)
    except OSError:
        pass
for path in ("/etc/shadow", "{{CANARY}}", "/work/escape/etc/shadow"):
    try:
        with open(path) as f:
            READ.append(f.read(20))
    except OSError:
        pass
try:
    with open("/tmp/host", "w") as f:
        f.write("overwritten from the sandbox")
except OSError:
    pass


def row_sums(x):
    if READ:
        return x[:, 0]
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
