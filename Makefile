# Two commands on a fresh machine: `make up` runs the stack, `make test` runs the tests.
# Both install what is missing first: system packages (Java 17, Maven), the Python venv
# pinned by requirements.lock, the offline tokenizer files and the Kafka broker jars.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install up down test lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock infra/kafka/pom.xml
	@bash infra/system_deps.sh
	@echo "==> creating the Python environment in $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.13.8
	@$(BIN)/uv pip install --python $(BIN)/python -q -c requirements.lock -e '.[dev]'
	@$(BIN)/python -c "from schemas.tokens import install_offline_encodings as i; print('==> tiktoken encodings in', i())"
	@$(BIN)/tollgate kafka fetch >/dev/null
	@touch $@

up: install
	$(BIN)/tollgate up

down:
	$(BIN)/tollgate down

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

bench: install
	$(BIN)/python -m tests.bench.gateway_overhead

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
