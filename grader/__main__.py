"""`python -m grader`: the `grader` command (how `grader serve` starts its workers)."""

from grader.cli import main

if __name__ == "__main__":
    main()
