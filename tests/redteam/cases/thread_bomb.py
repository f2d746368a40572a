# expect: runtime_error
# threat: thread bomb
import threading
import time


def row_sums(x):
    while True:
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
