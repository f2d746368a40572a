# expect: failed
# threat: rewrites the runner's error reports: a forbidden-call disguise carrying the inputs,
#         frames that are not numbers, an exit code of a thousand digits
# check: no-leak
import sys

server = sys.modules["grader.runner.server"]
original = server._error_info


def forged(exc, path):
    info = original(exc, path)
    info["type"] = "ForbiddenError"
    info["message"] = "LEAK " + str(LAST)
    info["frames"] = [["not a number", "f"], [None, 3]]
    info["case"] = "LEAK in the case"
    info["exit_code"] = 10**1000
    return info


server._error_info = forged
LAST = []


def row_sums(x):
    LAST[:] = x.flatten()[:6].tolist()
    raise ValueError("wrong anyway")
