# expect: passed
# threat: opens sockets to the Internet, to the host's loopback services and to host unix sockets
import socket

import torch

ATTEMPTS = [
    ("127.0.0.1", int("{{PORT}}")),
    ("127.0.0.1", 6379),
    ("127.0.0.1", 5432),
    ("127.0.0.1", 8000),
    ("10.0.2.2", 80),
    ("1.1.1.1", 443),
    ("8.8.8.8", 53),
]
CONNECTED = []
for host, port in ATTEMPTS:
    try:
        socket.create_connection((host, port), timeout=0.5).close()
        CONNECTED.append((host, port))
    except OSError:
        pass
for path in (
    "{{UNIX}}",
    "/var/run/docker.sock",
    "/run/redis/redis.sock",
    "/var/run/postgresql/.s.PGSQL.5432",
):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        CONNECTED.append(path)
    except OSError:
        pass
try:
    socket.gethostbyname("pypi.org")
    CONNECTED.append("dns")
except OSError:
    pass
print("connected:", CONNECTED)


def row_sums(x):
    if CONNECTED:
        return x[:, 0]
    return x @ torch.ones(x.shape[1], dtype=x.dtype)
