# expect: timeout
# threat: heavy work at import time
import time

end = time.time() + 1000
while time.time() < end:
    pass


def row_sums(x):
    return x
