# Every target bootstraps .venv itself: a fresh machine needs only Python 3.10+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BASE_STAMP := $(VENV)/.installed-base
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: demo test pytest lit bench lint fuzz clean

$(BASE_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(TEST_STAMP): $(BASE_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(BENCH_STAMP): $(TEST_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

demo: $(BASE_STAMP)
	$(BIN)/python benchmarks/demo.py

test: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 tests
	$(BIN)/lit -v lit_tests

pytest: $(TEST_STAMP)
	$(BIN)/python -m pytest -n 2 tests

lit: $(TEST_STAMP)
	$(BIN)/lit -v lit_tests

lint: $(TEST_STAMP)
	$(BIN)/ruff check .

# The differential fuzzer (tests/fuzz): make fuzz CASES=10000 SEED=1
CASES ?= 1000
SEED ?= 0
fuzz: $(TEST_STAMP)
	$(BIN)/python -m tests.fuzz --cases $(CASES) --seed $(SEED)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/cpu.py
	$(BIN)/python benchmarks/block_sparse.py
	$(BIN)/python benchmarks/knn.py
	$(BIN)/python benchmarks/wide_rhs.py
	$(BIN)/python benchmarks/threads.py
	$(BIN)/python benchmarks/grad.py
	$(BIN)/python benchmarks/laplacian.py
	$(BIN)/python benchmarks/gpu_static.py
	$(BIN)/python benchmarks/torch_compile.py
	$(BIN)/python benchmarks/complex_nudft.py
	$(BIN)/python benchmarks/half.py
	$(BIN)/python benchmarks/scaling.py
	$(BIN)/python benchmarks/out_of_core.py
	$(BIN)/python benchmarks/jax_overhead.py

clean:
	rm -rf $(VENV) build *.egg-info
