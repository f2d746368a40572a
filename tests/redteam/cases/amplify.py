# expect: runtime_error
# scope: harness
# threat: answers with one large buffer referenced many times, to make the harness copy it over and over
import sys

server = sys.modules["grader.runner.server"]
codec = sys.modules["grader.codec"]


def send(self, reply):
    big = memoryview(bytearray(16 * 1024 * 1024))
    frame = codec.frame_parts({"ok": True, "reply": "value", "value": [{"t": "bytes", "b": 0}] * 256}, [big])
    for part in frame:
        view = memoryview(part)
        while view.nbytes:
            view = view[server.os.write(self.proto_out, view) :]


def row_sums(x):
    server.Server.send = send
    return x[:, 0]
