# expect: failed
# threat: writes passing results.json, JUnit and verdict files everywhere it can, returns wrong sums
import json
import os

PASSING = json.dumps({"status": "passed", "score": 100, "tests": [{"status": "passed"}]})
JUNIT = '<testsuite tests="3" failures="0" errors="0"><testcase name="test_random"/></testsuite>'
for folder in (os.getcwd(), "/tmp", os.path.expanduser("~"), "/work", "/autograder/results", "/"):
    for name, text in (("results.json", PASSING), ("verdict.json", PASSING), ("junit.xml", JUNIT)):
        try:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, name), "w") as f:
                f.write(text)
        except OSError:
            pass


def row_sums(x):
    return x[:, 0]
