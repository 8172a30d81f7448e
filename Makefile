# lit-video: `make demo`, `make test` and `make docs` set up .venv when it is missing, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# One stamp per layer of the environment, so that a re-run with the same pyproject.toml installs nothing:
# the package with its dependencies (all `make demo` needs), the docs tools (`make docs`), and everything
# the tests need on top (`make test`, `make setup`).
BASE_STAMP := $(VENV)/.lit-video-base
DOCS_STAMP := $(VENV)/.lit-video-docs
STAMP      := $(VENV)/.lit-video-installed
# Material for MkDocs prints a banner about MkDocs 2.0 on every build; the docs build reads cleanly without it.
export NO_MKDOCS_2_WARNING := 1

.PHONY: setup demo test docs lint bench clean

setup: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(BASE_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	@touch $@

# The docs extra alone: the API reference is read from the source (griffe), so building the site needs
# neither torch nor the package installed.
$(DOCS_STAMP): pyproject.toml | $(PY)
	$(PY) -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["docs"]))' \
		| xargs $(PY) -m pip install -q
	@touch $@

# What only the tests need. FFmpeg's shared libraries: the optional torchcodec backend (a dev extra) only;
# install them when we can (root with apt-get), otherwise carry on: the other backends bundle their own
# FFmpeg. Likewise the PostgreSQL server binaries (initdb, pg_ctl): only tests/postgres.py uses them, to
# start a throwaway server for the shared-storage tests, which skip without them (and fail under CI=true:
# tests/conftest.py turns a skip for a missing dependency into a failure there). And Java: pycocoevalcap's
# PTB tokenizer and METEOR need it; without it the caption metrics use a Python tokenizer and skip METEOR.
# And Chromium with its chromedriver: tests/test_report_browser.py opens the report page in it (Selenium, a
# dev extra, drives it through Debian's driver, which matches the browser; nothing is downloaded).
# The dev extra (pytest, ruff, OpenCV, notebook tools, ...) and the docs extra (tests/test_docs.py builds
# the site) come on top of the demo's packages. On a machine with an NVIDIA driver (nvidia-smi found), the gpu
# extra too, then one line of `lit-video data decoders` on whether clips decode on the GPU here (docs/gpu.md);
# neither fails the setup: the CPU path works without them.
$(STAMP): $(BASE_STAMP) pyproject.toml
	@command -v ffmpeg >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) ; } || \
		echo "note: FFmpeg not installed (needs root and apt-get); the torchcodec backend is unavailable and its tests skip locally, fail under CI=true"
	@{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || \
		{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) ; } || \
		echo "note: PostgreSQL server not installed (needs root and apt-get); its tests skip locally, fail under CI=true"
	@command -v java >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq default-jre-headless >/dev/null) ; } || \
		echo "note: Java not installed (needs root and apt-get); caption metrics use a Python tokenizer without METEOR; its tests skip locally, fail under CI=true"
	@{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) ; } || \
		echo "note: Chromium and chromedriver not installed (needs root and apt-get); the report's browser test skips locally, fails under CI=true"
	$(PY) -m pip install -q -e ".[dev,docs]"
	$(PY) -m pip install -q --no-deps "vos-benchmark==0.1.0"
	@if command -v nvidia-smi >/dev/null 2>&1; then \
		$(PY) -m pip install -q -e ".[gpu]" || echo "note: the gpu extra did not install (see docs/gpu.md)"; \
		$(VENV)/bin/lit-video data decoders 2>&1 | grep -E '^torchcodec-cuda:' || \
			echo "note: lit-video data decoders could not tell whether GPU decoding works"; \
	fi
	@touch $@

# The demo sweep: synthetic UCF101-layout data whose classes differ only by motion, then a grid of
# clip length x stride of a small R(2+1)D (sweeps/demo.yaml; a re-run resumes it), then its report.
# W&B runs offline unless you have logged in.
demo: $(BASE_STAMP)
	$(VENV)/bin/lit-video data synth --format ucf101 --out data/synthetic/ucf101 --skip-existing
	$(VENV)/bin/lit-video sweep sweeps/demo.yaml
	$(VENV)/bin/lit-video report --storage sqlite:///outputs/sweeps/demo.db --study-name demo --out outputs/reports/demo

# One test process per core (pytest-xdist; a file's tests stay in one process, the longest files start
# first: tests/conftest.py orders them, and --no-loadscope-reorder keeps that order instead of xdist's
# most-tests-first), so that the single-threaded tests do not leave the other cores idle.
# tests/test_docs.py builds the docs site with warnings as errors.
TEST_WORKERS ?= auto
test: $(STAMP)
	$(VENV)/bin/ruff check lit_video tests benchmarks docs
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

# The docs site (mkdocs.yml) into site/; any warning fails the build.
docs: $(DOCS_STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

lint: $(STAMP)
	$(VENV)/bin/ruff check lit_video tests benchmarks docs

bench: $(STAMP)
	$(PY) benchmarks/data_pipeline.py
	$(PY) benchmarks/sweep_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache site
