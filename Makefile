# Conveniences over tasks.py, which needs only Python 3.11+ and pip.
PYTHON ?= python3

.PHONY: install run test test-pg lint bench clean

install run test test-pg lint bench:
	$(PYTHON) tasks.py $@

clean:
	rm -rf .venv .pytest_cache .mypy_cache .ruff_cache
