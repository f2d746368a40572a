"""An autograder for LLM-engineering exercises.

This package is also mounted, in part, inside the sandbox (`grader.codec` and `grader.runner`),
so importing it must stay free of side effects and of third-party imports.
"""

__version__ = "0.1.0"
