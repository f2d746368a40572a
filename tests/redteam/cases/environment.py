# expect: passed
# threat: reads environment variables for secrets; returns wrong sums if anything of the host's shows
import os

import torch

ALLOWED = {
    "HOME",
    "TMPDIR",
    "LANG",
    "PATH",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MALLOC_ARENA_MAX",
    "CUDA_VISIBLE_DEVICES",
    "TRITON_INTERPRET",  # ours: kernels run in Triton's interpreter where there is no GPU
    "PWD",
    "LC_CTYPE",
}
EXTRA = sorted(set(os.environ) - ALLOWED)
print("extra environment:", EXTRA)


def row_sums(x):
    if EXTRA or any("SECRET" in v for v in os.environ.values()):
        return x[:, 0]
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
