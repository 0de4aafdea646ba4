# Two entry points for a fresh machine: `make demo` and `make test`.
# Each installs uv (if missing) and the locked dependencies first.

UV := python3 -m uv

.PHONY: setup demo test check bench

setup:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv>=0.5"
	$(UV) sync --frozen --compile-bytecode --extra sandbox

demo: setup
	./scripts/install-peers
	$(UV) run --frozen breakglass demo

test: setup
	./scripts/install-peers
	$(UV) run --frozen pytest
	$(MAKE) check

check:
	$(UV) run --frozen ruff check src tests benchmarks
	$(UV) run --frozen ruff format --check src tests benchmarks
	$(UV) run --frozen mypy
	$(UV) run --frozen lint-imports

bench: setup
	$(UV) run --frozen python benchmarks/run.py
