# edoc: every developer and CI task goes through here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DATA   ?= data

.PHONY: setup run demo test test-reliability lint format pytest bench bench-quick clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

## run: the local network (hub + 4 province nodes, SQLite, dev CA) until Ctrl-C
run: setup
	$(BIN)/edoc up --data-dir $(DATA)

## demo: make a dev CA, pack and sign the sample document, verify and inspect it
demo: setup
	$(BIN)/edoc keys init --keys-dir $(DATA)/keys --exist-ok
	$(BIN)/edoc keys issue 000.00.12.H53 --name "Sở Thông tin và Truyền thông tỉnh Tây Ninh" --keys-dir $(DATA)/keys --exist-ok
	$(BIN)/edoc keys issue 000.00.12.H53 --personal "Nguyễn Văn A" --keys-dir $(DATA)/keys --exist-ok
	$(BIN)/edoc pack seeds/samples/cong-van.json seeds/samples/ke-hoach.txt -o $(DATA)/cong-van.edxml \
		--sign-as 000.00.12.H53 --signer-cert "Nguyễn Văn A" --keys-dir $(DATA)/keys
	$(BIN)/edoc verify $(DATA)/cong-van.edxml --keys-dir $(DATA)/keys
	$(BIN)/edoc inspect $(DATA)/cong-van.edxml
	$(BIN)/edoc keys list --keys-dir $(DATA)/keys

lint: setup
	$(BIN)/ruff check edoc tests
	$(BIN)/ruff format --check edoc tests
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format edoc tests
	$(BIN)/ruff check --fix edoc tests

pytest: setup
	$(BIN)/pytest

test: lint pytest

## test-reliability: the long part (soak, crash loop, fuzzing) plus the hostile corpus, then a summary
REPORT := $(abspath $(DATA))/reliability.jsonl
test-reliability: setup
	mkdir -p $(DATA) && rm -f $(REPORT)
	$(BIN)/pip install -q -e '.[dev,fuzz]'
	EDOC_RELIABILITY_REPORT=$(REPORT) $(BIN)/pytest -m "reliability or not reliability" tests/attacks tests/reliability; \
	status=$$?; \
	EDOC_RELIABILITY_REPORT=$(REPORT) $(BIN)/python -m tests.reliability.fuzz_atheris --runs 200000 --artifacts $(DATA)/atheris || status=1; \
	$(BIN)/python -m tests.reliability.report $(REPORT) && exit $$status

## bench: the machine's RSA limit, then a real network against it (bench/results.json, bench/RESULTS.md)
bench: setup
	$(BIN)/edoc bench

bench-quick: setup
	$(BIN)/edoc bench --quick

clean:
	rm -rf $(VENV) $(DATA) .mypy_cache .pytest_cache .ruff_cache .hypothesis
