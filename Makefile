# lit-video: `make demo` and `make test` set up .venv when it is missing, then run.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lit-video-installed
DATA   ?= data/synthetic

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# FFmpeg's shared libraries are needed by the optional torchcodec backend only; install them when
# we can (root with apt-get), otherwise carry on: the other backends bundle their own FFmpeg.
$(STAMP): pyproject.toml
	@command -v ffmpeg >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null) ; } || \
		echo "note: FFmpeg not installed; the torchcodec backend will be unavailable"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

# Synthetic UCF101-layout data whose classes differ only by motion, one loader epoch with its clips/s,
# then a small R(2+1)D trained on it: video-level accuracy and the compute profile are printed.
demo: $(STAMP)
	$(VENV)/bin/lit-video data synth --format ucf101 --out $(DATA)/ucf101 --skip-existing
	$(VENV)/bin/lit-video data iterate --format ucf101 --root $(DATA)/ucf101 --clip-len 8 --stride 2 --resolution 112 --num-workers 2
	$(VENV)/bin/lit-video fit --config experiments/synthetic/r2plus1d_tiny.yaml --data.init_args.root $(DATA)/ucf101 \
		--trainer.default_root_dir outputs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check lit_video tests benchmarks
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check lit_video tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/data_pipeline.py

clean:
	rm -rf $(VENV) .pytest_cache
