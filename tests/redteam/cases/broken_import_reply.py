# expect: runtime_error
# scope: harness
# threat: makes the runner answer the import with something that is not a list of names, to crash the harness
import sys

server = sys.modules["grader.runner.server"]
server.sorted = lambda names: [5]


def row_sums(x):
    return x[:, 0]
