"""The runner: the only code of ours that runs inside the sandbox, next to the submission.

It imports the submission and answers the harness's calls over its pipes. Nothing it says is
trusted: the harness decodes its answers as plain data and compares them itself.
"""
