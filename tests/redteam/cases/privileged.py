# expect: passed
# threat: mknod, mount, ptrace, setuid and new namespaces; returns wrong sums if any works
import ctypes
import os

import torch

libc = ctypes.CDLL(None, use_errno=True)


def shielded():
    raise PermissionError("the runner is pid 1 of its namespace: its own SIGKILL is ignored")


WORKED = []
for name, call in {
    "mknod": lambda: os.mknod("/work/mem", 0o600 | 0o020000, os.makedev(1, 1)),
    "setuid": lambda: os.setuid(0),
    "setgid": lambda: os.setgid(0),
    # pid 1 of the sandbox: someone else's process (bubblewrap's init), unless it is the runner
    # itself (Docker), which the kernel shields from its own SIGKILL
    "kill-init": lambda: os.kill(1, 9) if os.getpid() != 1 else shielded(),
    "chroot": lambda: os.chroot("/work"),
}.items():
    try:
        call()
        WORKED.append(name)
    except OSError:
        pass
for name, result in {
    "mount": libc.mount(b"none", b"/work", b"tmpfs", 0, None),
    "ptrace": libc.ptrace(16, 1, None, None),
    "unshare-user": libc.unshare(0x10000000),
    "unshare-mount": libc.unshare(0x00020000),
}.items():
    if result == 0:
        WORKED.append(name)
print("worked:", WORKED)


def row_sums(x):
    if WORKED:
        return x[:, 0]
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
