# Every target with a "## " comment is listed by `make help`.
.DEFAULT_GOAL := help
PY := .venv/bin/python

.PHONY: help run test ci lint format bench

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## Run the app locally with Redis, worker and dev mailbox (scripts/run)
	scripts/run

test: ## Run the whole test suite (scripts/test); pass options with ARGS="-k login"
	scripts/test $(ARGS)

ci: ## Run the suite as CI does (installs PostgreSQL and Chromium if missing)
	.ci/run

lint: ## ruff (lint and format check) and mypy
	scripts/test --version >/dev/null
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

format: ## Apply ruff's formatting and safe fixes
	.venv/bin/ruff format .
	.venv/bin/ruff check --fix .

bench: ## Run the benchmarks in bench/ (they print tables; they never fail on timing)
	scripts/test --version >/dev/null
	@for script in bench/*.py; do echo "== $$script"; $(PY) "$$script" || exit 1; done
