"""Tools for exercise authors: a new exercise package from templates (`grader exercise new`)."""

from grader.authoring.scaffold import Scaffolded, ScaffoldError, scaffold

__all__ = ["ScaffoldError", "Scaffolded", "scaffold"]
