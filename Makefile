# The two commands a new user needs are `make run` and `make test`; both set everything up first.
.PHONY: bootstrap run test bench demo lint typecheck contracts lock clean

VENV := .venv/bin

bootstrap:
	@bash scripts/bootstrap.sh

run: bootstrap
	@$(VENV)/tally run

test: bootstrap
	@$(VENV)/python -m pytest -q $(PYTEST_ARGS)

bench: bootstrap
	@$(VENV)/python -m scripts.bench $(SCENARIOS)

demo: bootstrap
	@$(VENV)/tally demo

lint: bootstrap
	@$(VENV)/ruff check .
	@$(VENV)/mypy ledger

contracts: bootstrap
	@$(VENV)/python -m scripts.build_contracts

# Re-resolve the pinned dependency set (needs uv: pip install uv).
lock:
	uv pip compile requirements.in --python-version 3.11 -o requirements.lock

clean:
	rm -rf .venv node_modules .tally .pytest_cache .mypy_cache .ruff_cache
