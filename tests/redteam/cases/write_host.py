# expect: passed
# threat: writes everywhere a host file might be: the repository, the host's /tmp, home, the runtime
# check: host-untouched
import os

import torch

for path in (
    "{{CANARY}}",
    "{{REPO}}/pwned.txt",
    "{{REPO}}/solutions/pwned.txt",
    "/root/pwned.txt",
    "/opt/grader/runtime/grader/codec.py",
    "/opt/grader/site/0/pwned.py",
    "/usr/lib/pwned.txt",
):
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("pwned")
    except OSError:
        pass


def row_sums(x):
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
