# expect: passed
# threat: searches the filesystem for hidden tests, the reference and solutions; returns wrong sums if found
import os

import torch

WANTED = {"test_hidden.py", "solution.py", "solutions", "exercise.toml", "guarded-sum"}
FOUND = []
for top, dirs, files in os.walk("/"):
    if top.startswith(("/proc", "/sys", "/dev")):
        dirs[:] = []
        continue
    FOUND += [os.path.join(top, n) for n in dirs + files if n in WANTED]
    if os.path.basename(top) in ("site-packages", "dist-packages"):
        # the installed libraries' own trees (torch's alone is most of the filesystem): what a
        # host could have put there would sit at this level, where its name is checked above
        dirs[:] = [d for d in dirs if d.split("-")[0] in ("grader", "sandbox", "web", "tests")]
print("found:", FOUND)


def row_sums(x):
    if FOUND:
        return x[:, 0]
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
