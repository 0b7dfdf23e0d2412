# zapdispatch: the two set-up commands of the README, plus checks.
# Needs Python 3.11, Redis on 127.0.0.1:6379 and PostgreSQL on 127.0.0.1:5432 (see README).

SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
DATABASE_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/zapdispatch
PYTEST_ARGS ?=
export DATABASE_URL

.PHONY: env run test lint db bench

env:  ## create .venv from the lock file
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

db: env  ## create the database if missing and migrate it
	$(UV) run --frozen python -m worker.devdb
	$(UV) run --frozen alembic upgrade head

run: db  ## worker, beat, Flower, status API (+ Evolution simulator without EVOLUTION_API_URL)
	$(UV) run --frozen zapdispatch up

test: env  ## the whole suite (tests make their own databases from the migrations)
	$(UV) run --frozen pytest $(PYTEST_ARGS)

lint: env
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

bench: env  ## benchmarks, not tests (~6 min): bench/results/latest.json and latest.md
	$(UV) run --frozen python -m bench
