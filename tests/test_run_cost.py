"""What a fit really cost (`lit_video.run_cost`): training FLOPs counted on the run's own first step (forward and
backward, at its batch and precision), evaluation FLOPs on each task's real evaluation path, equal-compute budgets."""

from __future__ import annotations

import warnings

import optuna
import pytest
import torch
from cli_errors import assert_one_line_error, run_lit_video
from conftest import REPO, TINY_COMPUTE_CLIP_LENS, TINY_COMPUTE_PFLOPS, write_spec
from lightning.pytorch.callbacks import Callback
from torch.utils.flop_counter import FlopCounterMode

from lit_video.compute import count_flops
from lit_video.data import keys
from lit_video.run_cost import ComputeProfileCallback
from lit_video.sweep.spec import SweepSpec, SweepSpecError
from lit_video.sweep.study import run_sweep
from lit_video.training import cpu_has_native_bf16, run_cli

pytestmark = pytest.mark.usefixtures("two_torch_threads")

EXPERIMENTS = REPO / "experiments" / "synthetic"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--trainer.max_epochs", "1",
         "--data.init_args.num_workers", "0"]


class FirstTrainingBatch(Callback):
    """Keeps a copy of the first training batch, as the training step received it (on its device)."""

    def __init__(self):
        self.batch = None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.batch is None:
            self.batch = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def fit(config: str, root, tmp_path, *extra: str, capture: bool = False, callbacks: list | None = None):
    """Fit `config` on `root` for one short epoch in this process (with `callbacks` added); returns (cli, cost
    callback, first training batch when `capture`)."""
    cli = run_cli(["--config", str(EXPERIMENTS / config), "--data.init_args.root", str(root), *QUIET,
                   "--trainer.default_root_dir", str(tmp_path), *extra], run=False)
    first = FirstTrainingBatch()
    cli.trainer.callbacks.extend([*(callbacks or []), *([first] if capture else [])])
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cost = next(c for c in cli.trainer.callbacks if isinstance(c, ComputeProfileCallback))
    return cli, cost, first.batch


def independent_step_flops(config: str, root, tmp_path, batch: dict) -> int:
    """FLOPs of one training step (forward + backward) of a freshly built task of `config` on `batch`, counted
    here by FlopCounterMode with no trainer involved."""
    cli = run_cli(["--config", str(EXPERIMENTS / config), "--data.init_args.root", str(root), *QUIET,
                   "--trainer.default_root_dir", str(tmp_path / "fresh")], run=False)
    task = cli.model.train()
    with FlopCounterMode(display=False) as counter:
        task.training_step(batch, 0).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize(("config", "root_fixture", "extra"), [
    ("vos_stm_tiny.yaml", "davis_root", ["--trainer.check_val_every_n_epoch", "1"]),
    ("caption_tiny.yaml", "msrvtt_root", []),
])
def test_training_flops_per_clip_are_those_of_a_real_training_step(config, root_fixture, extra, tmp_path, request):
    root = request.getfixturevalue(root_fixture)
    cli, cost, batch = fit(config, root, tmp_path, "--trainer.limit_val_batches", "1", *extra, capture=True)
    metrics = cost.metrics()
    clips = batch[keys.VIDEO].shape[0]
    expected = independent_step_flops(config, root, tmp_path, batch) / clips / 1e9
    assert metrics["compute/train_gflops_per_clip"] == pytest.approx(expected, rel=0.01)
    # backward costs about twice the forward: a count of the forward alone would be a third of this
    assert metrics["compute/train_gflops_per_clip"] > 2 * metrics["compute/gflops"] * 0.9
    seen = clips * cli.trainer.global_step  # every training batch of these datasets is full
    assert metrics["compute/train_clips_seen"] == seen == metrics["compute/train_steps"] * clips
    assert metrics["compute/train_pflops_total"] == pytest.approx(expected * seen / 1e6, rel=0.01)
    assert metrics["compute/peak_memory_mb"] > 0 and metrics["compute/memory_source"] == "process peak RSS growth"
    if config.startswith("vos"):  # the recipe asks for bf16 autocast: the counted step ran in the dtype that ran
        assert metrics["compute/train_dtype"] == ("bfloat16" if cpu_has_native_bf16() else "float32")
        assert metrics["compute/eval_seconds_per_frame"] > 0  # counted in the sanity check, timed after it
    else:
        assert metrics["compute/train_dtype"] == "float32"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_trains_in_float32_on_a_cpu_without_bfloat16_kernels(native, davis_root, tmp_path, monkeypatch):
    # the answer about the CPU stands in for both kinds of CPU: this machine is only one of them
    monkeypatch.setattr("lit_video.training.cpu_has_native_bf16", lambda: native)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cli = run_cli(["--config", str(EXPERIMENTS / "vos_stm_tiny.yaml"), "--data.init_args.root", str(davis_root),
                       *QUIET, "--trainer.default_root_dir", str(tmp_path)], run=False)
    warned = [str(w.message) for w in caught if "training in 32-true instead" in str(w.message)]
    assert (cli.trainer.precision, len(warned)) == (("bf16-mixed", 0) if native else ("32-true", 1))
    assert cli.config.trainer.precision == cli.trainer.precision  # what the run's config.yaml records


def test_a_classification_trial_records_the_flops_of_its_training_step(tmp_path, ucf101_root):
    spec = SweepSpec.load(write_spec(tmp_path, ucf101_root, search_space={
        "data.init_args.clip_len": {"type": "categorical", "choices": [8]}}))
    (trial,) = run_sweep(spec).trials
    attrs = trial.user_attrs
    assert trial.state == optuna.trial.TrialState.COMPLETE, attrs.get("failure")
    assert attrs["compute/train_dtype"] == "float32"  # bf16 autocast: the VOS recipe's test above
    # the tiny recipe: batches of 8 clips of 8 x 48 x 48; classification FLOPs depend on the shapes alone
    cli = run_cli(spec.config_args({"data.init_args.clip_len": 8}, 0, tmp_path / "fresh"), run=False)
    task = cli.model.train()
    batch = {keys.VIDEO: torch.randn(8, 3, 8, 48, 48), keys.LABEL: torch.zeros(8, dtype=torch.long)}
    with FlopCounterMode(display=False) as counter:
        task.training_step(batch, 0).backward()
    assert attrs["compute/train_gflops_per_clip"] == pytest.approx(counter.get_total_flops() / 8 / 1e9, rel=0.01)
    assert attrs["compute/train_clips_seen"] == 16 and attrs["compute/train_steps"] == 2  # TINY_BUDGET's 2 batches


def test_classification_evaluation_costs_every_view_of_a_video(tmp_path, ucf101_root):
    cli, cost, _ = fit("r2plus1d_tiny.yaml", ucf101_root, tmp_path, "--trainer.max_steps", "1",
                       "--trainer.limit_val_batches", "1", "--trainer.enable_checkpointing", "false",
                       "--data.init_args.num_clips", "2", "--data.init_args.num_crops", "3")
    per_clip = count_flops(cli.model.model, torch.zeros(1, 3, 8, 48, 48))
    assert cost.metrics()["compute/eval_gflops_per_video"] == pytest.approx(2 * 3 * per_clip / 1e9, rel=1e-6)
    assert "compute/eval_seconds_per_frame" not in cost.metrics()  # whole clips, not frame by frame


def test_vos_evaluation_costs_more_when_memory_is_written_more_often(tmp_path, davis_root):
    costs = {}
    for mem_every in (10, 2):
        _, cost, _ = fit("vos_stm_tiny.yaml", davis_root, tmp_path / str(mem_every), "--trainer.max_steps", "1",
                         "--trainer.limit_val_batches", "1", "--model.init_args.mem_every", str(mem_every))
        costs[mem_every] = cost.metrics()["compute/eval_gflops_per_video"]
    assert costs[2] > 1.5 * costs[10]


def test_equal_compute_sweep_gives_every_clip_length_the_same_training_compute(tiny_compute_study):
    study = optuna.load_study(study_name="tiny_compute",
                              storage=f"sqlite:///{tiny_compute_study.out_dir / 'tiny_compute.db'}")
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert sorted({t.params["data.init_args.clip_len"] for t in trials}) == TINY_COMPUTE_CLIP_LENS
    assert len(trials) == 2 * len(TINY_COMPUTE_CLIP_LENS)
    clips_per_step = 4
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["budget/train_pflops"] == TINY_COMPUTE_PFLOPS
        assert attrs["compute/train_pflops_total"] == pytest.approx(TINY_COMPUTE_PFLOPS, rel=0.05)
        steps = attrs["compute/train_steps"]
        assert steps == attrs["budget/max_steps"] == attrs["compute/train_clips_seen"] / clips_per_step
        # steps inversely proportional to the cost of a clip, to one step
        ideal = TINY_COMPUTE_PFLOPS * 1e6 / (attrs["compute/train_gflops_per_clip"] * clips_per_step)
        assert abs(steps - ideal) <= 1
    by_clip = {t.params["data.init_args.clip_len"]: t.user_attrs for t in trials}
    short, long = by_clip[4], by_clip[16]
    ratio = long["compute/train_gflops_per_clip"] / short["compute/train_gflops_per_clip"]
    assert ratio > 3  # 4x the frames
    assert abs(short["compute/train_steps"] - ratio * long["compute/train_steps"]) <= ratio


class ValidationSteps(Callback):
    """The global step of every validation run of a fit."""

    def __init__(self):
        self.steps: list[int] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self.steps.append(trainer.global_step)


def test_a_device_hours_budget_sets_the_steps_and_the_schedule_follows_them(tmp_path, ucf101_root):
    validations = ValidationSteps()
    cli, cost, _ = fit("r2plus1d_tiny.yaml", ucf101_root, tmp_path, "--trainer.enable_checkpointing", "false",
                       "--trainer.limit_val_batches", "1", "--data.init_args.batch_size", "4",
                       "--data.init_args.resolution", "32", "--compute_profile.train_device_hours", "0.004",
                       "--compute_profile.measure_steps", "2", callbacks=[validations])
    metrics = cost.metrics()
    steps = metrics["budget/max_steps"]
    assert steps >= 4 and cli.trainer.global_step == steps == metrics["compute/train_steps"]
    assert validations.steps[-1] == steps  # validated at the last step, in the middle of an epoch or not
    # 14.4 s of training on this machine, whatever its speed: within a factor of the budget
    assert 0.3 * 0.004 < metrics["compute/train_device_hours"] < 3 * 0.004
    # the cosine schedule ends at the derived last step, not at the provisional one
    assert cli.trainer.optimizers[0].param_groups[0]["lr"] < 1e-3 * cli.model.optimizer_config.lr + 1e-12
    assert cli.trainer.max_epochs == -1


def test_a_resumed_fit_keeps_its_totals_and_its_budget():
    cost = ComputeProfileCallback(train_pflops=1.0)
    cost.train_flops_per_clip, cost.clips_seen, cost.train_seconds, cost.budget_max_steps = 2e9, 40, 12.5, 17
    resumed = ComputeProfileCallback(train_pflops=1.0)
    resumed.load_state_dict(cost.state_dict())
    assert resumed.metrics() == cost.metrics()
    assert resumed.budget_max_steps == 17


@pytest.mark.parametrize(("budget", "message"), [
    ({"train_pflops": 1.0, "train_device_hours": 2}, "give train_pflops or train_device_hours, not both"),
    ({"train_pflops": -1}, "budget.train_pflops: expected a positive number, got -1"),
    ({"train_device_hours": "x"}, "budget.train_device_hours: expected a positive number"),
    ({"train_pflops": 1.0, "max_epochs": 3}, "leave out max_epochs"),
])
def test_bad_compute_budgets_are_refused_when_the_spec_is_read(tmp_path, ucf101_root, budget, message):
    with pytest.raises(SweepSpecError, match=message.replace("(", r"\(")):
        SweepSpec.load(write_spec(tmp_path, ucf101_root, budget=budget))


def test_bad_budget_and_micro_batch_are_one_line_errors(tmp_path, ucf101_root):
    spec = write_spec(tmp_path, ucf101_root, micro_batch="sometimes")
    assert_one_line_error(run_lit_video("sweep", str(spec)), "micro_batch: expected auto or null, got 'sometimes'")
    result = run_lit_video("fit", "--config", str(EXPERIMENTS / "r2plus1d_tiny.yaml"), "--data.init_args.root",
                           str(ucf101_root), "--compute_profile.train_pflops", "0")
    assert_one_line_error(result, "compute_profile.train_pflops: expected a positive number, got 0.0")


def test_the_measurements_leave_the_training_untouched(tmp_path, ucf101_root):
    weights = {}
    for enabled in ("true", "false"):
        cli, _, _ = fit("r2plus1d_tiny.yaml", ucf101_root, tmp_path / enabled, "--trainer.max_steps", "2",
                        "--trainer.limit_val_batches", "1", "--trainer.enable_checkpointing", "false",
                        "--trainer.deterministic", "true", "--compute_profile.enabled", enabled)
        weights[enabled] = cli.model.state_dict()
    assert weights["true"].keys() == weights["false"].keys()
    for key, value in weights["true"].items():
        assert torch.equal(value, weights["false"][key]), key


class FailingStep(Callback):
    """Raises in the first training or validation step, as a broken model or a bad batch does."""

    def __init__(self, stage: str):
        self.stage = stage

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.stage == "train":
            raise RuntimeError("the step failed")

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        if self.stage == "validate":
            raise RuntimeError("the step failed")


@pytest.mark.parametrize("stage", ["train", "validate"])
def test_a_fit_that_fails_mid_step_leaves_no_flop_counter_on(stage, tmp_path, ucf101_root):
    """The FLOPs of a step are counted while it runs. A step that raises must not leave the counter on: every
    later torch operation in the process (the next trial of a sweep worker) would go through it, many times
    slower."""
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack

    failing = FailingStep(stage)
    with pytest.raises(RuntimeError, match="the step failed"):
        # the failing callback runs after the cost callback has started counting the step
        fit("r2plus1d_tiny.yaml", ucf101_root, tmp_path, "--trainer.num_sanity_val_steps", "0", callbacks=[failing])
    assert _get_current_dispatch_mode_stack() == []
