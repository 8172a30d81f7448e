"""Shared fixtures: synthetic datasets in the official layouts and frame-marked test videos."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from postgres import PostgresUnavailable, postgres_server

# no W&B run (a service process, files) for every fit; a test of W&B sets WANDB_MODE=offline itself
os.environ.setdefault("WANDB_MODE", "disabled")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one pytest-xdist process per core: torch in each (and in the processes the tests start)
    # takes one thread, or the processes' OpenMP threads would compete for the cores and wait on each other;
    # a module that asks for more threads lets them sleep while they wait rather than spin on a busy core
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(1)

from lit_video.data.synthetic import synthesize  # noqa: E402
from lit_video.data.synthetic.spec import SynthSpec  # noqa: E402
from lit_video.data.synthetic.vis import VisSynthSpec, write_youtube_vis  # noqa: E402
from lit_video.data.synthetic.vos import VosSynthSpec, write_davis, write_youtube_vos  # noqa: E402
from lit_video.sweep.spec import SweepSpec  # noqa: E402
from lit_video.sweep.study import run_sweep  # noqa: E402
from lit_video.video.encode import write_video  # noqa: E402

MARKER_BITS = 8
MARKER_CELL = 8  # pixels per marker bit; big blocks survive lossy encoding


def marked_frames(num_frames: int, height: int = 64, width: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth moving content with the frame index written as a binary code of black/white blocks
    along the top rows -> uint8 (T,H,W,3). Smooth content keeps 4:2:0 encoding losses small."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, 3)
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        for c in range(3):
            frames[t, ..., c] = 128 + 90 * np.sin(0.09 * xx + 0.05 * yy + 0.4 * t + phase[c])
        for bit in range(MARKER_BITS):
            frames[t, :MARKER_CELL, bit * MARKER_CELL:(bit + 1) * MARKER_CELL] = 255 if (t >> bit) & 1 else 0
    return frames


def read_marker(frame: np.ndarray) -> int:
    """The frame index written by `marked_frames`."""
    cells = [frame[2:MARKER_CELL - 2, b * MARKER_CELL + 2:(b + 1) * MARKER_CELL - 2].mean() for b in range(MARKER_BITS)]
    return sum(1 << b for b, value in enumerate(cells) if value > 128)


# (extension, encoder settings): H.264 with one keyframe per 100 frames and B-frames, MPEG-4 part 2
# in AVI as UCF101 ships, VP9 in WebM.
CONTAINERS = {
    "mp4": dict(gop_size=100, max_b_frames=2),
    "avi": dict(gop_size=12),
    "webm": dict(gop_size=100),
}
NUM_MARKED_FRAMES = 150


@pytest.fixture(scope="session")
def marked_videos(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    """One frame-marked video per container -> {ext: (path, written frames)}."""
    folder = tmp_path_factory.mktemp("marked")
    frames = marked_frames(NUM_MARKED_FRAMES)
    videos = {}
    for extension, settings in CONTAINERS.items():
        path = folder / f"marked.{extension}"
        write_video(path, frames, fps=25, quality="high", **settings)
        videos[extension] = (path, frames)
    return videos


SMALL_SPEC = SynthSpec(num_classes=4, videos_per_class=10, num_frames=24, size=(64, 80), seed=3)


@pytest.fixture(scope="session")
def ucf101_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ucf101")
    synthesize("ucf101", root, SMALL_SPEC)
    return root


@pytest.fixture(scope="session")
def hmdb51_root(tmp_path_factory) -> Path:
    """4 classes x 10 videos (5 source movies of 2 clips each); each split: per class 6 train, 2 test, 2 unused."""
    root = tmp_path_factory.mktemp("hmdb51")
    synthesize("hmdb51", root, SMALL_SPEC)
    return root


@pytest.fixture(scope="session")
def kinetics_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kinetics")
    synthesize("kinetics", root, SynthSpec(num_classes=5, videos_per_class=10, num_frames=24, size=(64, 80), seed=5))
    return root


@pytest.fixture(scope="session")
def ssv2_root(tmp_path_factory) -> Path:
    """Something-Something V2 copy: 4 template classes x 10 webm videos (6 train, 2 validation, 2 test each)."""
    root = tmp_path_factory.mktemp("ssv2")
    synthesize("ssv2", root, SMALL_SPEC)
    return root


# Synthetic VOS data: 16 training and 8 held-out sequences of moving, occluding textured shapes.
VOS_SPEC = VosSynthSpec(num_videos=24, num_frames=40, size=(96, 128), seed=0)


@pytest.fixture(scope="session")
def davis_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis")
    write_davis(root, VOS_SPEC)
    return root


@pytest.fixture(scope="session")
def ytvos_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("youtube_vos")
    write_youtube_vos(root, VosSynthSpec(num_videos=6, num_frames=20, size=(64, 96), seed=3))
    return root


# Synthetic YouTube-VIS 2021: 9 videos (6 train, 3 valid with instances_gt.json) of 10 frames, covering
# single-instance videos, mid-video entries and exits, and repeated categories.
YTVIS_SPEC = VisSynthSpec(num_videos=9, num_frames=10, size=(64, 96), seed=1)


@pytest.fixture(scope="session")
def ytvis_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("youtube_vis")
    write_youtube_vis(root, YTVIS_SPEC)
    return root


@pytest.fixture
def offline(tmp_path, monkeypatch) -> Path:
    """Offline W&B runs whose every file (staged artifacts included) lands under tmp_path; returns the run's
    default_root_dir. The working folder is tmp_path/cwd: nothing may be written there."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for variable, folder in (("WANDB_DATA_DIR", "data"), ("WANDB_CACHE_DIR", "cache"), ("WANDB_CONFIG_DIR", "config")):
        monkeypatch.setenv(variable, str(tmp_path / "w-home" / folder))
    for variable in ("WANDB_PROJECT", "WANDB_API_KEY", "WANDB_DIR"):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return tmp_path / "out"


REPO = Path(__file__).resolve().parents[1]
TINY_EXPERIMENT = REPO / "experiments" / "synthetic" / "r2plus1d_tiny.yaml"
# Seconds per trial: one epoch of two batches, no checkpoints, W&B as the only logger.
TINY_BUDGET = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "enable_progress_bar": False,
               "enable_checkpointing": False, "logger": False}


def write_spec(folder: Path, root: Path, **fields) -> Path:
    """A sweep spec over the tiny R(2+1)D on `root` (grid clip_len x stride, one seed), with `fields`
    replacing any of its keys; written to folder/spec.yaml."""
    spec = {
        "experiment": str(TINY_EXPERIMENT),
        "study_name": "test",
        "out_dir": str(folder / "out"),
        "overrides": {"data.init_args.root": str(root), "data.init_args.num_workers": 0},
        "search_space": {"data.init_args.clip_len": {"type": "categorical", "choices": [4, 8]},
                         "data.init_args.stride": {"type": "categorical", "choices": [1, 2]}},
        "objectives": [{"metric": "val/acc_video_best", "direction": "maximize"}],
        "sampler": "grid",
        "pruner": "none",
        "budget": TINY_BUDGET,
    }
    spec.update(fields)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="session")
def tiny_study(tmp_path_factory, ucf101_root) -> SweepSpec:
    """A finished sweep on real storage with offline W&B runs: clip_len {4, 8} x stride {1, 2} x seeds
    {0, 1}, eight trials of one short epoch. Its storage is `sqlite:///<out_dir>/tiny.db`."""
    folder = tmp_path_factory.mktemp("tiny_study")
    spec = SweepSpec.load(write_spec(folder, ucf101_root, study_name="tiny", seeds=[0, 1]))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        run_sweep(spec)
    return spec


# An equal-compute sweep: every trial of tiny_compute_study trains TINY_COMPUTE_PFLOPS, whatever its clip length
# (batches of 4 clips of 32x32 pixels: 10 steps at 16 frames, 20 at 8, 39 at 4).
TINY_COMPUTE_PFLOPS = 2.5e-5
TINY_COMPUTE_CLIP_LENS = [4, 8, 16]


@pytest.fixture(scope="session")
def tiny_compute_study(tmp_path_factory, ucf101_root) -> SweepSpec:
    """A finished sweep at equal training compute on real storage: clip_len {4, 8, 16} x seeds {0, 1}, each
    trial's steps derived from `budget: {train_pflops: TINY_COMPUTE_PFLOPS}`. Storage
    `sqlite:///<out_dir>/tiny_compute.db`."""
    folder = tmp_path_factory.mktemp("tiny_compute_study")
    budget = {key: value for key, value in TINY_BUDGET.items() if key not in ("max_epochs", "limit_train_batches")}
    spec = SweepSpec.load(write_spec(
        folder, ucf101_root, study_name="tiny_compute", seeds=[0, 1],
        overrides={"data.init_args.root": str(ucf101_root), "data.init_args.num_workers": 0,
                   "data.init_args.batch_size": 4, "data.init_args.resolution": 32},
        search_space={"data.init_args.clip_len": {"type": "categorical", "choices": TINY_COMPUTE_CLIP_LENS}},
        budget={**budget, "train_pflops": TINY_COMPUTE_PFLOPS}))
    run_sweep(spec)
    return spec


# The superuser password of the test PostgreSQL server; tests grep logs and outputs for it to prove
# that it never leaks.
POSTGRES_PASSWORD = "pg-Secr3t-test-pw"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """postgresql://lit:<POSTGRES_PASSWORD>@127.0.0.1:<port>/optuna on a real PostgreSQL server
    that lives for the test session (a database `optuna`, shared: give each study its own name). Skips
    when the server binaries are missing."""
    try:
        # the system temp folder, not tmp_path_factory: pytest's folders are mode 700 and the server
        # runs as the `postgres` user when we are root
        with postgres_server(Path(tempfile.gettempdir()), POSTGRES_PASSWORD) as url:
            yield url
    except PostgresUnavailable as reason:
        pytest.skip(str(reason))


# Synthetic captioning data: 30 videos of 16 frames (18 train, 6 val, 6 test), 10 captions each.
CAPTION_SPEC_FIELDS = dict(num_videos=30, num_frames=16, size=(64, 64), seed=0, captions_per_video=10)


@pytest.fixture(scope="session")
def msrvtt_root(tmp_path_factory) -> Path:
    from lit_video.data.synthetic.captions import CaptionSynthSpec, write_msrvtt

    root = tmp_path_factory.mktemp("msrvtt")
    write_msrvtt(root, CaptionSynthSpec(**CAPTION_SPEC_FIELDS))
    return root


@pytest.fixture(scope="session")
def msvd_root(tmp_path_factory) -> Path:
    """MSVD copy; read it with MSVDDataModule(root, train_end=18, val_end=24, test_end=30)."""
    from lit_video.data.synthetic.captions import CaptionSynthSpec, write_msvd

    root = tmp_path_factory.mktemp("msvd")
    write_msvd(root, CaptionSynthSpec(**CAPTION_SPEC_FIELDS))
    return root


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Torch on one thread for a test module (`pytestmark = pytest.mark.usefixtures("one_torch_thread")`):
    tiny models' ops are too small to gain from a second thread, and on a shared CI machine two OpenMP
    threads waiting on each other at every op made an overfit test 20x slower."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def two_torch_threads():
    """Torch on two threads for a test module, also in a pytest-xdist worker (one thread by default there):
    for learning tests whose figures were measured on two threads, since the results of a training run
    depend on the thread count (the order of floating-point sums)."""
    with torch_threads(2):
        yield


# The longest test files, longest first. Under pytest-xdist (`--dist loadfile --no-loadscope-reorder`, as `make
# test` runs it) files are handed to the workers in collection order, so these start at once on different
# workers instead of one running alone at the end. (xdist's default order, most tests first, started the two
# learning modules after 18 other files and the one-test learning file last.)
LONGEST_FIRST = ("test_vos_motion_learning.py", "test_vis_task.py", "test_vos_task.py", "test_learning.py",
                 "test_learning_motion.py",
                 "test_cluster.py", "test_caption_task.py", "test_notebooks.py", "test_experiments.py", "test_sweep.py",
                 "test_vos_motion_models.py", "test_flow.py")


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


# Under CI (CI=true, as `.ci/run` is run) a skipped test is a failure: every dependency a test skips without
# (the PostgreSQL server, Java for pycocoevalcap, vos-benchmark, FFmpeg for torchcodec) is one `make setup`
# installs, so a skip there means the environment is not the one the suite claims to check. A skip that
# does not stand for a missing dependency says so with ALLOWED_IN_CI in its reason.
ALLOWED_IN_CI = "[not a missing dependency]"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr)


def _fail_skip_in_ci(report) -> None:
    reason = _skip_reason(report)
    if report.skipped and _in_ci() and ALLOWED_IN_CI not in reason:
        report.outcome = "failed"
        report.longrepr = (f"skipped under CI=true, where `make setup` must provide what this test needs: {reason} "
                           f"(run `make setup` as root, or install it by hand)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _fail_skip_in_ci(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield  # a module-level importorskip skips the whole file at collection
    _fail_skip_in_ci(outcome.get_result())
