# Shortcuts for the scripts the README describes.
.PHONY: setup test run lint bench

setup:
	scripts/setup.sh

test:
	scripts/test.sh

run:
	scripts/run.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check . && .venv/bin/mypy

bench:
	.venv/bin/python benchmarks/overhead.py
