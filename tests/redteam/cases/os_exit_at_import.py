# expect: runtime_error
# threat: os._exit(0) at import
import os

os._exit(0)
