# edoc: every developer and CI task goes through here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data

.PHONY: help setup run demo test test-reliability lint format pytest bench bench-quick clean

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $@

## help: what each target does (the `## target:` lines of this file)
help:
	@sed -n 's/^## //p' $(firstword $(MAKEFILE_LIST))

## setup: the virtualenv .venv with edoc and its tools, pinned by constraints.txt
setup: $(BIN)/.installed

## run: the local network (hub + 4 province nodes, SQLite, dev CA) until Ctrl-C
run: setup
	$(BIN)/edoc up --data-dir $(DATA)

## demo: a CA of its own in $(DATA)/demo (never a running network's $(DATA)/keys), then pack
##   and sign the sample document, verify and inspect it
DEMO := $(DATA)/demo
demo: setup
	$(BIN)/edoc keys init --data-dir $(DEMO) --exist-ok
	$(BIN)/edoc keys issue 000.00.12.H53 --name "Sở Thông tin và Truyền thông tỉnh Tây Ninh" --data-dir $(DEMO) --exist-ok
	$(BIN)/edoc keys issue 000.00.12.H53 --personal "Nguyễn Văn A" --data-dir $(DEMO) --exist-ok
	$(BIN)/edoc pack seeds/samples/cong-van.json seeds/samples/ke-hoach.txt -o $(DEMO)/cong-van.edxml \
		--sign-as 000.00.12.H53 --signer-cert "Nguyễn Văn A" --data-dir $(DEMO)
	$(BIN)/edoc verify $(DEMO)/cong-van.edxml --data-dir $(DEMO)
	$(BIN)/edoc inspect $(DEMO)/cong-van.edxml
	$(BIN)/edoc keys list --data-dir $(DEMO)

## lint: ruff and mypy, changing nothing
lint: setup
	$(BIN)/ruff check edoc tests
	$(BIN)/ruff format --check edoc tests
	$(BIN)/mypy

## format: ruff formats and fixes what it can
format: setup
	$(BIN)/ruff format edoc tests
	$(BIN)/ruff check --fix edoc tests

## pytest: the tests, the reliability suite's long part left out
pytest: setup
	$(BIN)/pytest

## test: lint, then pytest (what CI runs)
test: lint pytest

## test-reliability: the long part (soak, crash loop, fuzzing) plus the hostile corpus, then a summary
REPORT := $(abspath $(DATA))/reliability.jsonl
test-reliability: setup
	mkdir -p $(DATA) && rm -f $(REPORT)
	$(BIN)/pip install -q -c constraints.txt -e '.[dev,fuzz]'
	EDOC_RELIABILITY_REPORT=$(REPORT) $(BIN)/pytest -m "reliability or not reliability" tests/attacks tests/reliability; \
	status=$$?; \
	EDOC_RELIABILITY_REPORT=$(REPORT) $(BIN)/python -m tests.reliability.fuzz_atheris --runs 200000 --artifacts $(DATA)/atheris || status=1; \
	$(BIN)/python -m tests.reliability.report $(REPORT) && exit $$status

## bench: the machine's RSA limit, then a real network against it (bench/results.json, bench/RESULTS.md)
bench: setup
	$(BIN)/edoc bench

## bench-quick: the one-minute version (bench/quick/)
bench-quick: setup
	$(BIN)/edoc bench --quick

## clean: the virtualenv, the data folder and the tools' caches
clean:
	rm -rf $(VENV) $(DATA) .mypy_cache .pytest_cache .ruff_cache .hypothesis
