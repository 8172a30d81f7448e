"""Local sweep workers on a machine with several GPUs: each gets its own consecutive share of them through
CUDA_VISIBLE_DEVICES, a share that does not fit the GPUs or the trials' devices is refused before anything
starts, and each worker records on the study what it was given."""

from __future__ import annotations

import sys

import optuna
import pytest
from cli_errors import assert_one_line_error, run_lit_video
from conftest import TINY_BUDGET, write_spec

import lit_video.sweep.launch as launch
from lit_video.errors import LitVideoError
from lit_video.sweep.launch import assign_devices, visible_gpus, worker_devices
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.storage import open_storage

EIGHT = [str(i) for i in range(8)]
EIGHT_ENV = ",".join(EIGHT)
# The tiny experiment sets accelerator cpu, for which there is nothing to share out: "auto" finds no GPU on a
# machine without one (the tests' CUDA_VISIBLE_DEVICES names GPUs that are not there) and trains on the CPU.
GPU_BUDGET = {**TINY_BUDGET, "accelerator": "auto"}


def test_eight_gpus_are_shared_by_four_workers_in_disjoint_consecutive_pairs():
    assert assign_devices(4, EIGHT) == ["0,1", "2,3", "4,5", "6,7"]
    assert assign_devices(8, EIGHT) == EIGHT
    assert assign_devices(1, EIGHT) == [EIGHT_ENV]
    for fitting in ("auto", -1, "-1", None, 2, "2", [0, 1], [1, 0], "0,1"):
        assert assign_devices(4, EIGHT, fitting) == ["0,1", "2,3", "4,5", "6,7"], fitting


def test_gpu_uuids_are_kept_as_given():
    uuids = ["GPU-8f2a1c3e-0000", "GPU-8f2a1c3e-0001", "MIG-11aa22bb-0002", "MIG-11aa22bb-0003"]
    assert assign_devices(2, uuids) == [f"{uuids[0]},{uuids[1]}", f"{uuids[2]},{uuids[3]}"]


def test_without_a_gpu_the_workers_environments_are_unchanged():
    assert assign_devices(3, []) == [None, None, None]
    assert assign_devices(4, [], devices_setting=1) == [None] * 4


@pytest.mark.parametrize("n_workers, visible, setting, fragments", [
    (3, EIGHT, None, ["--workers 3", "8 visible GPUs do not divide among 3 workers", "use 1, 2, 4 or 8"]),
    (4, EIGHT[:2], None, ["--workers 4", "2 visible GPUs do not divide among 4 workers", "use 1 or 2"]),
    (4, EIGHT, 1, ["--workers 4", "each worker owns 2 of the 8 visible GPUs", "budget.devices is 1", "--workers 8"]),
    (4, EIGHT, [0], ["--workers 4", "owns 2 of the 8", "budget.devices is [0]", "--workers 8"]),
    (4, EIGHT, [2, 3], ["--workers 4", "numbered 0..1 inside it", "budget.devices is [2, 3]"]),
    (2, EIGHT, "3", ["--workers 2", "owns 4 of the 8", "budget.devices is '3'", "set it to 4 or auto"]),
])
def test_a_share_that_does_not_fit_is_refused(n_workers, visible, setting, fragments):
    with pytest.raises(LitVideoError) as raised:
        assign_devices(n_workers, visible, setting, "budget.devices")
    message = str(raised.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize("value, expected", [
    ("0,1,2,3", ["0", "1", "2", "3"]), (" 4, 5 ", ["4", "5"]), ("", []), ("-1", []), ("0,1,-1,2", ["0", "1"]),
    ("GPU-aa,GPU-bb", ["GPU-aa", "GPU-bb"]),
])
def test_the_visible_gpus_are_read_from_cuda_visible_devices(monkeypatch, value, expected):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
    assert visible_gpus() == expected


def test_the_spec_gives_the_trials_devices_and_a_cpu_sweep_keeps_its_environment(tmp_path, ucf101_root):
    def devices(**fields) -> list:
        return worker_devices(SweepSpec.load(write_spec(tmp_path, ucf101_root, **{"budget": GPU_BUDGET, **fields})),
                              4, EIGHT)

    assert devices() == ["0,1", "2,3", "4,5", "6,7"]  # the tiny experiment says nothing of devices
    with pytest.raises(LitVideoError, match="budget.devices is 1"):
        devices(budget={**GPU_BUDGET, "devices": 1})
    overrides = {"data.init_args.root": str(ucf101_root), "trainer.devices": [0]}
    with pytest.raises(LitVideoError, match=r"overrides.trainer.devices is \[0\]"):
        devices(overrides=overrides)
    assert devices(overrides=overrides, budget={**GPU_BUDGET, "devices": "auto"})[0] == "0,1"  # budget wins
    # trials on the CPU (the budget's accelerator, else the experiment's) use no GPU: nothing to share or refuse
    assert devices(budget={**GPU_BUDGET, "devices": 1, "accelerator": "cpu"}) == [None] * 4
    assert devices(budget={**TINY_BUDGET, "devices": 1}) == [None] * 4


def test_local_workers_start_each_worker_with_its_own_devices(tmp_path, monkeypatch):
    """Without an assignment given, `local_workers` shares out the GPUs of its own environment."""
    marks = tmp_path / "marks"
    marks.mkdir()
    child = ("import os, sys\n"
             f"open(os.path.join({str(marks)!r}, str(os.getpid())), 'w').write(os.environ['CUDA_VISIBLE_DEVICES'])\n")
    monkeypatch.setattr(launch, "worker_command", lambda *args: [sys.executable, "-c", child])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", EIGHT_ENV)
    assert launch.local_workers("spec.yaml", "x.journal", "test", n_workers=4) == [0] * 4
    assert sorted(path.read_text() for path in marks.iterdir()) == ["0,1", "2,3", "4,5", "6,7"]
    with pytest.raises(LitVideoError, match="--workers 3"):
        launch.local_workers("spec.yaml", "x.journal", "test", n_workers=3)
    assert len(list(marks.iterdir())) == 4  # refused before any worker started


def test_four_real_workers_each_record_their_own_pair_of_gpus(tmp_path, ucf101_root):
    """`lit-video sweep --workers 4` with 8 GPUs named: the workers (on the CPU here, where torch sees no
    GPU) record disjoint pairs covering all eight, and the grid of four trials is done."""
    spec_path = write_spec(tmp_path, ucf101_root, budget=GPU_BUDGET)
    journal = tmp_path / "study.journal"
    result = run_lit_video("sweep", spec_path, "--storage", journal, "--workers", "4",
                           env={"CUDA_VISIBLE_DEVICES": EIGHT_ENV, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.output[-3000:]
    assert "CUDA_VISIBLE_DEVICES 0,1 | 2,3 | 4,5 | 6,7" in result.stdout
    study = optuna.load_study(study_name="test", storage=open_storage(str(journal)))
    records = {key: value for key, value in study.user_attrs.items() if key.startswith("worker:")}
    assert len(records) == 4, records
    pairs = sorted(record["cuda_visible_devices"] for record in records.values())
    assert pairs == ["0,1", "2,3", "4,5", "6,7"]
    assert all(isinstance(record["started"], float) for record in records.values())
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) == 4


@pytest.mark.parametrize("workers, budget, fragments", [
    ("3", GPU_BUDGET, ["--workers 3", "8 visible GPUs do not divide among 3 workers", "use 1, 2, 4 or 8"]),
    ("4", {**GPU_BUDGET, "devices": 1}, ["--workers 4", "owns 2 of the 8 visible GPUs", "budget.devices is 1",
                                          "--workers 8"]),
])
def test_a_share_that_does_not_fit_is_refused_before_the_study_exists(tmp_path, ucf101_root, workers, budget,
                                                                       fragments):
    spec_path = write_spec(tmp_path, ucf101_root, budget=budget)
    journal = tmp_path / "study.journal"
    result = run_lit_video("sweep", spec_path, "--storage", journal, "--workers", workers,
                           env={"CUDA_VISIBLE_DEVICES": EIGHT_ENV}, timeout=120)
    assert_one_line_error(result, *fragments)
    assert not journal.exists() and not (tmp_path / "out").exists()  # no study, no worker, no trial folder
