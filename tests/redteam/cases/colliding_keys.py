# expect: runtime_error
# scope: harness
# threat: answers with a set of integers built to share one hash, to make the harness's decoding quadratic
import json
import sys

server = sys.modules["grader.runner.server"]
codec = sys.modules["grader.codec"]
MODULUS = 2**61 - 1


def send(self, reply):
    # written by hand: building such a set in Python would be slow here first
    value = {"t": "set", "v": [k * MODULUS for k in range(1, 60_000)]}
    head = json.dumps({"ok": True, "reply": "value", "value": value}).encode()
    frame = codec.PREFIX.pack(codec.MAGIC, len(head), 0) + head
    view = memoryview(frame)
    while view.nbytes:
        view = view[server.os.write(self.proto_out, view) :]


def row_sums(x):
    server.Server.send = send
    return x[:, 0]
