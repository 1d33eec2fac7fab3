# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
C_SOURCES := $(wildcard csrc/pagehash/*.c csrc/pagehash/*.h csrc/evtxscan/*.c csrc/evtxscan/*.h \
	csrc/rowfmt/*.c csrc/rowfmt/*.h)
DEMO_OUT ?= demo-out

.PHONY: demo test test-tools lint venv build fuzz bench clean asan arm64-check

$(STAMP): pyproject.toml setup.py $(C_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Rebuild the C core in place after editing csrc/ (the license field needs setuptools >= 77).
build: $(STAMP)
	$(PY) -m pip install -q 'setuptools>=77'
	$(PY) setup.py -q build_ext --inplace

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" DEMO_OUT="$(DEMO_OUT)" bash samples/demo.sh

# What the tests need beyond the venv: headless Chromium renders report.html
# (tests/evtx/test_evtx_cli.py). Debian's package: PyPI has no Chromium that installs without
# downloading a browser build of its own (playwright, pyppeteer do), which this machine cannot.
# The fuzz smoke (every harness FUZZ_SMOKE_SECONDS from the committed corpus) needs clang for
# libFuzzer; Debian's package too.
test-tools:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "make test: installing Debian's chromium (report.html is checked in it)"; \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq chromium >/dev/null; }
	@command -v clang >/dev/null || { \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "make test: installing Debian's clang (libFuzzer for the fuzz smoke)"; \
	  $$sudo apt-get update -qq && $$sudo apt-get install -y -qq clang >/dev/null; }

# ruff at the declared line length (pyproject.toml [tool.ruff]) and mypy on the package.
LINT_PATHS := hpforensics plugins tests bench samples fuzz
lint: $(STAMP)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy hpforensics

# Lint (ruff, mypy), the tests, then a short fuzz smoke: a crash, hang or sanitizer report
# fails it (fuzz/README.md).
FUZZ_SMOKE_SECONDS ?= 5
test: $(STAMP) test-tools lint
	$(PY) -m pytest -q $(PYTEST_ARGS)
	$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

bench: $(STAMP)
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info hpforensics/*.so $(DEMO_OUT)

# The C core's self-checking driver under AddressSanitizer + UBSan (also run by the test suite).
CC ?= cc
PAGEHASH_CORE := $(filter-out csrc/pagehash/module.c,$(wildcard csrc/pagehash/*.c))
asan:
	mkdir -p build
	$(CC) -std=c11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -pthread \
		-Wall -Wextra -o build/pagehash_test csrc/pagehash/tests/test_core.c $(PAGEHASH_CORE)
	./build/pagehash_test

# The same driver cross-built for Arm64 (the NEON XXH3 body), run under qemu-aarch64 when that
# is installed (Debian: gcc-aarch64-linux-gnu, qemu-user); otherwise only built.
ARM64_CC ?= aarch64-linux-gnu-gcc
QEMU_ARM64 ?= qemu-aarch64
arm64-check:
	mkdir -p build
	$(ARM64_CC) -std=c11 -O2 -static -pthread -Wall -Wextra -Werror \
		-o build/pagehash_test_arm64 csrc/pagehash/tests/test_core.c $(PAGEHASH_CORE)
	if command -v $(QEMU_ARM64) >/dev/null; then $(QEMU_ARM64) build/pagehash_test_arm64; \
	else echo "$(QEMU_ARM64) not found: built build/pagehash_test_arm64, not run"; fi

# Coverage-guided fuzzing (atheris for the Python parsers, libFuzzer + ASan/UBSan for the C core):
# each harness runs FUZZ_SECONDS; see fuzz/README.md. Needs the `fuzz` extra and clang.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(PY) -m pip install -q 'atheris>=2.3'
	PY=$(PY) bash fuzz/run.sh $(FUZZ_SECONDS)
