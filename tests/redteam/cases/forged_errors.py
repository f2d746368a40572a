# expect: failed
# scope: harness
# threat: rewrites the runner's error reports: a forbidden-call disguise carrying the inputs,
#         frames that are not numbers, an exit code of a thousand digits
# check: no-leak
import sys

messages = sys.modules["grader.runner.messages"]
original = messages.ErrorReport.to_wire


def forged(report):
    info = original(report)
    info["type"] = "ForbiddenError"
    info["message"] = "LEAK " + str(LAST)
    info["frames"] = [["not a number", "f"], [None, 3]]
    info["case"] = "LEAK in the case"
    info["exit_code"] = 10**1000
    return info


messages.ErrorReport.to_wire = forged
LAST = []


def row_sums(x):
    LAST[:] = x.flatten()[:6].tolist()
    raise ValueError("wrong anyway")
