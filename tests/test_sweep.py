"""Sweeps on a real Optuna SQLite storage: grids run once and resume, failures are recorded and do not
end the sweep, pruning stops a hopeless trial, bad specs fail before any trial starts."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import time
import warnings
from pathlib import Path

import optuna
import pytest
import torch
from conftest import TINY_BUDGET, write_spec
from torch import nn

from lit_video.cli import main
from lit_video.models.registry import register_model
from lit_video.sweep.spec import SweepSpec, SweepSpecError
from lit_video.sweep.study import load_study, run_sweep
from lit_video.sweep.tracking import offline_runs, read_offline_run, wandb_executable


@register_model("sweep_test_oom")
class RunsOutOfMemory(nn.Module):
    """Stands for a configuration too large for the device: its forward raises CUDA's OOM error."""

    def __init__(self, num_classes: int, **unused):
        super().__init__()
        self.head = nn.Linear(1, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")


@register_model("sweep_test_nan")
class ProducesNaN(nn.Module):
    def __init__(self, num_classes: int, **unused):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.mean(dim=(2, 3, 4))) * float("nan")


@register_model("sweep_test_hopeless")
class Hopeless(nn.Module):
    """Confidently predicts class 0 whatever it sees: a validation loss far above any learning model's."""

    def __init__(self, num_classes: int, **unused):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(50.0), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(num_classes))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(x.shape[0], self.num_classes, device=x.device)
        logits[:, 0] = self.scale
        return logits + 0 * self.bias


def complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_grid_runs_each_point_once_and_resumes(tmp_path, ucf101_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # these read the trials' W&B runs back
    spec = SweepSpec.load(write_spec(tmp_path, ucf101_root))
    study = run_sweep(spec)
    assert len(study.trials) == 4 and len(complete(study)) == 4
    points = {(t.params["data.init_args.clip_len"], t.params["data.init_args.stride"]) for t in study.trials}
    assert points == {(4, 1), (4, 2), (8, 1), (8, 2)}
    trial = complete(study)[0]
    assert trial.user_attrs["compute/gflops"] > 0 and trial.user_attrs["compute/params"] > 0
    assert trial.user_attrs["wall_time_s"] >= trial.user_attrs["fit_time_s"] > 0
    # the compute profile follows the swept clip length: twice the frames, twice the FLOPs
    flops = {t.params["data.init_args.clip_len"]: t.user_attrs["compute/gflops"] for t in complete(study)}
    assert flops[8] == pytest.approx(2 * flops[4], rel=0.05)
    again = run_sweep(SweepSpec.load(spec.path))  # the same command again: nothing is redone
    assert len(again.trials) == 4
    assert (tmp_path / "out" / "test.db").is_file()
    assert len(offline_runs(tmp_path / "out" / "test")) == 4  # one W&B run per trial, none for the re-run


def wandb_records(run_dir: str) -> list[dict]:
    """Every record of an offline run, as the wandb CLI prints them."""
    done = subprocess.run([wandb_executable(), "leet", "inspect", "--json", run_dir], capture_output=True,
                          text=True, check=True)
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_each_trial_has_an_offline_wandb_run_with_its_values_and_compute(tmp_path, ucf101_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = SweepSpec.load(write_spec(tmp_path, ucf101_root, search_space={
        "data.init_args.clip_len": {"type": "categorical", "choices": [4, 8]}}, seeds=[0, 3],
        wandb={"project": "lit-video-test", "tags": ["ablation"]}))
    study = run_sweep(spec)
    assert len(complete(study)) == 4
    for trial in study.trials:
        run = read_offline_run(trial.user_attrs["wandb_dir"])  # wandb leet inspect --summary --json
        assert run["name"] == str(trial.number) and run["state"] == "finished"
        assert run["project"] == "lit-video-test" and set(run["tags"]) == {"test", "ablation"}
        config, summary = run["config"], run["summary"]
        # the swept values, both as sweep values and inside the full resolved config
        assert config["sweep"]["values"] == {"data.init_args.clip_len": trial.params["data.init_args.clip_len"]}
        assert config["sweep"]["seed"] == trial.params["seed_everything"] == config["seed_everything"]
        assert config["data"]["init_args"]["clip_len"] == trial.params["data.init_args.clip_len"]
        assert config["model"]["init_args"]["num_classes"] == 4  # linked from the dataset at instantiation
        assert config["trainer"]["max_epochs"] == 1
        for key in ("gflops", "params", "peak_memory_mb", "train_clips_per_s", "train_gflops_per_clip",
                    "train_pflops_total", "eval_gflops_per_video"):
            assert config["compute"][key] == pytest.approx(trial.user_attrs[f"compute/{key}"])
            assert summary[f"compute/{key}"] == pytest.approx(trial.user_attrs[f"compute/{key}"])
        assert summary["objective/val/acc_video_best"] == pytest.approx(trial.value)
        assert summary["trial/state"] == "complete"
        record = next(r for r in wandb_records(trial.user_attrs["wandb_dir"]) if r["type"] == "run")["run"]
        assert record["run_group"] == "test" and record["job_type"] == "trial"


def test_a_failed_trial_run_says_why(tmp_path, ucf101_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")  # these read the trials' W&B runs back
    path = write_spec(tmp_path, ucf101_root, search_space={
        "model.init_args.model": {"type": "categorical", "choices": ["sweep_test_nan"]}})
    trial = run_sweep(SweepSpec.load(path)).trials[0]
    run = read_offline_run(trial.user_attrs["wandb_dir"])
    assert run["exit_code"] == 1
    assert run["summary"]["trial/failure"] == trial.user_attrs["failure"]
    assert run["summary"]["trial/state"] == "failed"


@register_model("sweep_test_ctrl_c")
class CtrlCOnce(nn.Module):
    """Presses Ctrl-C (a real SIGINT to this process) during its first training step, then behaves."""

    interrupted = False

    def __init__(self, num_classes: int, **unused):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and not CtrlCOnce.interrupted:
            CtrlCOnce.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the interrupt is raised here
        return self.head(x.mean(dim=(2, 3, 4)))


def test_interrupted_sweep_resumes_without_redoing_trials(tmp_path, ucf101_root):
    path = write_spec(tmp_path, ucf101_root, search_space={
        "model.init_args.model": {"type": "categorical", "choices": ["r2plus1d", "sweep_test_ctrl_c"]},
        "model.init_args.optimizer.lr": {"type": "categorical", "choices": [0.001, 0.002]}})
    CtrlCOnce.interrupted = False
    handler = signal.getsignal(signal.SIGINT)
    # Python's own Ctrl-C handler, as in a terminal: a pytest-xdist worker process ignores SIGINT
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(SweepSpec.load(path))
    finally:
        signal.signal(signal.SIGINT, handler)  # Lightning ignores further Ctrl-C while it shuts down
    study = load_study(SweepSpec.load(path))
    first = {t.number for t in complete(study)}
    stopped = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL]
    assert len(first) < 4 and len(stopped) == 1 and "failure" not in stopped[0].user_attrs
    # The same command again: the interrupted point is redone, finished ones are kept, each point once.
    study = run_sweep(SweepSpec.load(path))
    finished = complete(study)
    assert len(finished) == 4
    assert len({tuple(sorted(t.params.items())) for t in finished}) == 4
    assert first <= {t.number for t in finished}
    assert any(t.params == stopped[0].params for t in finished)


@register_model("sweep_test_warns")
class WarnsAtEveryStep(nn.Module):
    """A tiny classifier that warns at every forward pass, as a deprecated library call would."""

    def __init__(self, num_classes: int, **unused):
        super().__init__()
        self.head = nn.Linear(3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (batch, 3, frames, height, width) -> logits (batch, num_classes)
        warnings.warn("sweep_test_warns: this call is deprecated", FutureWarning, stacklevel=1)
        return self.head(x.mean(dim=(2, 3, 4)))


def test_a_sweep_shows_each_warning_once_and_saves_checkpoints_without_a_notice(tmp_path, ucf101_root):
    path = write_spec(tmp_path, ucf101_root, search_space={
        "model.init_args.model": {"type": "categorical", "choices": ["sweep_test_warns"]},
        "model.init_args.optimizer.lr": {"type": "categorical", "choices": [0.001, 0.002]}},
        budget={**TINY_BUDGET, "max_epochs": 2})
    notices: list[logging.LogRecord] = []
    handler = logging.Handler(logging.INFO)
    handler.emit = notices.append
    lightning_log = logging.getLogger("lightning.pytorch")
    lightning_log.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")  # every step's warning reaches the sweep
            study = run_sweep(SweepSpec.load(path))
    finally:
        lightning_log.removeHandler(handler)
    assert len(complete(study)) == 2
    # Two trials of two epochs (four resume checkpoints), many steps: the warning shows once.
    assert [str(w.message) for w in caught].count("sweep_test_warns: this call is deprecated") == 1
    assert not [r for r in notices if "weights_only" in r.getMessage()]
    assert len(list((tmp_path / "out" / "test").glob("trial_*/checkpoints/last.ckpt"))) == 2


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path, ucf101_root):
    path = write_spec(tmp_path, ucf101_root, search_space={
        "model.init_args.model": {"type": "categorical", "choices": ["sweep_test_oom", "sweep_test_nan", "r2plus1d"]},
    })
    study = run_sweep(SweepSpec.load(path))
    by_model = {t.params["model.init_args.model"]: t for t in study.trials}
    assert by_model["sweep_test_oom"].state == optuna.trial.TrialState.FAIL
    assert by_model["sweep_test_oom"].user_attrs["failure"].startswith("infeasible: out of memory")
    assert by_model["sweep_test_nan"].state == optuna.trial.TrialState.FAIL
    assert by_model["sweep_test_nan"].user_attrs["failure"].startswith("failed: not a number")
    assert by_model["r2plus1d"].state == optuna.trial.TrialState.COMPLETE  # not poisoned by the failures
    assert len(run_sweep(SweepSpec.load(path)).trials) == 3  # recorded failures are not retried


def test_pruning_stops_a_hopeless_trial(tmp_path, ucf101_root):
    common = dict(pruner="median", objectives=[{"metric": "val/loss", "direction": "minimize"}],
                  budget={**TINY_BUDGET, "max_epochs": 3})
    # Two learning trials first (the median pruner needs finished trials to compare with) ...
    learning = write_spec(tmp_path, ucf101_root, search_space={
        "model.init_args.optimizer.lr": {"type": "categorical", "choices": [0.001, 0.002]}}, **common)
    study = run_sweep(SweepSpec.load(learning))
    assert len(complete(study)) == 2
    # ... then the same study extended with a model whose validation loss stays far above theirs.
    hopeless = write_spec(tmp_path, ucf101_root, search_space={
        "model.init_args.model": {"type": "categorical", "choices": ["sweep_test_hopeless"]}}, **common)
    study = run_sweep(SweepSpec.load(hopeless), n_trials=3)
    trial = study.trials[-1]
    assert trial.params["model.init_args.model"] == "sweep_test_hopeless"
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["pruned_at_epoch"] == 1  # the first epoch after the warm-up step, not the last
    assert max(trial.intermediate_values) == 1


@pytest.mark.parametrize("change, message", [
    ({"search_space": {"data.init_args.clip_lenn": {"type": "categorical", "choices": [4]}}},
     "search_space.data.init_args.clip_lenn = 4: Option 'clip_lenn' is not accepted"),
    ({"search_space": {"data.init_args.clip_len": {"type": "categorical", "choices": [4, "long"]}}},
     "search_space.data.init_args.clip_len = 'long'"),
    ({"search_space": {"data.init_args.clip_len": {"type": "integer", "low": 1, "high": 4}}},
     "search_space.data.init_args.clip_len: type 'integer' is not int, float or categorical"),
    ({"samplr": "tpe"}, "unknown key 'samplr'"),
    ({"overrides": {"trainer.max_epochz": 3}}, "overrides / budget"),
    ({"objectives": [{"metric": "a", "direction": "up"}, {"metric": "b"}]}, "objectives[0].direction: 'up'"),
    ({"objectives": [{"metric": "a"}, {"metric": "b"}], "pruner": "median"}, "cannot prune multi-objective"),
    ({"search_space": {"model.init_args.optimizer.lr": {"type": "float", "low": 0.1, "high": 0.2}}},
     "a grid needs categorical or int parameters"),
    ({"heartbeat": {"interval": 5, "grace_period": 5}}, "heartbeat.grace_period (5) must be longer"),
    ({"heartbeat": {"intervall": 5}}, "heartbeat: unknown key 'intervall'"),
    ({"checkpoint_every_n_steps": 0}, "checkpoint_every_n_steps: expected a positive integer"),
])
def test_bad_specs_fail_before_any_trial(tmp_path, ucf101_root, change, message):
    path = write_spec(tmp_path, ucf101_root, **change)
    with pytest.raises(SweepSpecError, match=None) as caught:
        run_sweep(SweepSpec.load(path))
    assert message in str(caught.value) and str(path) in str(caught.value)
    assert not (tmp_path / "out" / "test.db").exists()  # no study was created, no trial ran


SHIPPED_SPECS = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.name)
def test_every_shipped_sweep_spec_is_valid(path):
    spec = SweepSpec.load(path)
    spec.validate()  # every swept and fixed key at the ends of its range, against the real config parser
    assert spec.experiment.is_file() and spec.study_name == path.stem


def test_the_shipped_ablations_and_pareto_sweep_are_what_they_say():
    specs = {p.stem: SweepSpec.load(p) for p in SHIPPED_SPECS}
    assert {"demo", "clip_length_ablation", "resolution_ablation", "ucf101_tpe", "pareto_accuracy_vs_gflops"} <= set(specs)
    ablation = specs["clip_length_ablation"]
    assert ablation.sampler == "grid" and len(ablation.seeds) == 2
    assert {p.key for p in ablation.params} == {"data.init_args.clip_len", "data.init_args.stride"}
    assert [p.key for p in specs["resolution_ablation"].params] == ["data.init_args.resolution"]
    assert specs["ucf101_tpe"].sampler == "tpe" and specs["ucf101_tpe"].pruner == "median"
    pareto = specs["pareto_accuracy_vs_gflops"]
    assert pareto.sampler == "nsga2" and pareto.pruner == "none"
    assert [(o.metric, o.direction) for o in pareto.objectives] == [
        ("val/acc_video_best", "maximize"), ("compute/gflops", "minimize")]
    vos = specs["vos_memory_ablation"]
    assert vos.sampler == "grid" and vos.grid_size == 18
    assert {p.key for p in vos.params} == {"data.init_args.clip_len", "model.init_args.mem_every",
                                           "data.init_args.resolution"}
    captioning = specs["captioning_frames_ablation"]
    assert captioning.sampler == "grid" and captioning.grid_size == 24
    assert {p.key for p in captioning.params} == {"data.init_args.clip_len", "data.init_args.resolution",
                                                  "model.init_args.beam_size"}


def test_sweep_command_prints_each_trial_where_the_runs_are_and_how_to_report(tmp_path, ucf101_root, capsys,
                                                                              monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    path = write_spec(tmp_path, ucf101_root, search_space={
        "data.init_args.clip_len": {"type": "categorical", "choices": [4, 8]}})
    assert main(["sweep", str(path)]) == 0
    out = capsys.readouterr().out
    storage = f"sqlite:///{(tmp_path / 'out' / 'test.db').resolve()}"
    for clip_len in (4, 8):
        assert re.search(rf"^trial \d complete: val/acc_video_best=[\d.]+ \(clip_len={clip_len}, seed_everything=0\) "
                         r"in \d+ s$", out, re.MULTILINE)
    assert f"study 'test' in {storage}: 2 complete, 0 pruned, 0 fail" in out
    wandb_dir = tmp_path / "out" / "test" / "wandb"
    assert f"W&B: 2 offline runs in {wandb_dir} (upload: wandb sync {wandb_dir}/offline-run-*)" in out
    assert f"report: lit-video report --storage {storage} --study-name test" in out
    assert main(["sweep", str(path)]) == 0  # the same command again: no trial runs
    out = capsys.readouterr().out
    assert "trial " not in out.split("study 'test'")[0] and "2 complete" in out


def test_two_worker_processes_share_a_journal_file_study(tmp_path, ucf101_root, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    path = write_spec(tmp_path, ucf101_root)
    journal = tmp_path / "shared" / "study.journal"
    assert main(["sweep", str(path), "--storage", str(journal), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert journal.is_file() and "warning" not in out
    study = load_study(SweepSpec.load(path), str(journal))
    points = {(t.params["data.init_args.clip_len"], t.params["data.init_args.stride"]) for t in complete(study)}
    assert points == {(4, 1), (4, 2), (8, 1), (8, 2)}  # the whole grid, run by the two workers together
    assert not (tmp_path / "out" / "test.db").exists()  # nothing went to the default SQLite file
