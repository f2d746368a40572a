"""The trusted harness: pytest runs the public and hidden tests in the grader's own process,
reaching the submission only through the sandboxed runner."""
