"""A sweep worker over its life: Ctrl-C stops it whenever it comes (exit 130, the trial queued again or
recorded, never lost), an interrupted trial resumes from the step it stopped at, and many trials in one
worker do not make it grow.

Workers are real `lit-video sweep` processes: `WORKER` below registers a tiny model, puts the Ctrl-C
where a test asks for it, then runs the command line as `python -m lit_video.cli` does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from conftest import TINY_BUDGET, write_spec

from lit_video.checkpoint import ResumeCheckpoint
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.study import load_study

COMPLETE, FAIL, WAITING = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
                           optuna.trial.TrialState.WAITING)
REPO = Path(__file__).resolve().parents[1]

# $CTRL_C: where the worker presses Ctrl-C (a real SIGINT to its own process), once:
#   step:N   in the forward pass of training step N (of one clip) of the first trial;
#   finish   right after the first trial's W&B run is finished (the end of the trial);
#   tell     as the worker records the first trial's result in the storage;
#   claim    just after the worker has claimed the second trial, before it starts.
# Outside training the Ctrl-C comes inside a __del__, where Python swallows any exception raised
# ("Exception ignored in ..."), as it does for a database connection closed by the garbage collector.
# $RSS_LOG: a file that gets the worker's resident memory (MB) after each trial, one number a line.
WORKER = r"""
import os, signal, sys, time
import torch
from torch import nn
from lit_video.models.registry import register_model

point = os.environ.get("CTRL_C", "")
pressed = []


class Swallowed:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)


def ctrl_c(swallowed=True):
    if not pressed:
        pressed.append(True)
        if swallowed:
            Swallowed()
        else:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.5)


@register_model("lifecycle_tiny")
class Tiny(nn.Module):
    def __init__(self, num_classes, **unused):
        super().__init__()
        self.head = nn.Linear(3, num_classes)
        self.steps = 0

    def forward(self, x):  # (B, 3, T, H, W) -> (B, num_classes)
        if self.training and x.shape[0] == 1:  # a training step (the compute profile trains a copy on 2 clips)
            self.steps += 1
            if point == f"step:{self.steps}":
                ctrl_c(swallowed=False)
        return self.head(x.mean(dim=(2, 3, 4)))


import optuna
import lit_video.sweep.trial as trial_module
from lit_video.sweep.worker import Worker

if point == "finish":
    finish_run = trial_module.finish_run
    def finished(*args, **kwargs):
        finish_run(*args, **kwargs)
        ctrl_c()
    trial_module.finish_run = finished
elif point == "tell":
    tell = optuna.Study.tell
    def told(self, *args, **kwargs):
        ctrl_c()
        return tell(self, *args, **kwargs)
    optuna.Study.tell = told
elif point == "claim":
    next_trial, claims = Worker._next_trial, []
    def claimed(self):
        trial = next_trial(self)
        claims.append(trial)
        if len(claims) == 2:
            ctrl_c()
        return trial
    Worker._next_trial = claimed
if os.environ.get("RSS_LOG"):
    run = Worker._run
    def measured(self, trial):
        try:
            return run(self, trial)
        finally:
            with open("/proc/self/status") as status:
                kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            with open(os.environ["RSS_LOG"], "a") as log:
                log.write(f"{kb / 1024:.2f}\n")
    Worker._run = measured

from lit_video.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_worker(spec: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """`lit-video sweep SPEC` through `WORKER`, with `env` (CTRL_C, RSS_LOG) set."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "PYTHONUNBUFFERED": "1", **env}
    return subprocess.run([sys.executable, "-c", WORKER, "sweep", str(spec)], cwd=REPO, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def tiny_spec(folder: Path, root: Path, steps: int = 2, **fields) -> Path:
    """A two-point grid (stride 1, 2) of the tiny model, `steps` training steps of one clip each;
    `fields` replace any spec key."""
    fields.setdefault("search_space", {
        "model.init_args.model": {"type": "categorical", "choices": ["lifecycle_tiny"]},
        "data.init_args.stride": {"type": "categorical", "choices": [1, 2]}})
    return write_spec(folder, root, overrides={"data.init_args.root": str(root), "data.init_args.num_workers": 0,
                   "data.init_args.batch_size": 1, "data.init_args.clip_len": 4, "data.init_args.num_clips": 1},
        budget={**TINY_BUDGET, "limit_train_batches": steps}, **fields)


def outcome(done: subprocess.CompletedProcess) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"


def checkpoint_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


def test_ctrl_c_during_training_checkpoints_the_step_and_the_retry_resumes_there(tmp_path, ucf101_root):
    path = tiny_spec(tmp_path, ucf101_root, steps=6)
    done = run_worker(path, CTRL_C="step:3")
    assert done.returncode == 130, outcome(done)
    assert "Traceback" not in done.stderr, outcome(done)
    study = load_study(SweepSpec.load(path))
    stopped, untouched, retry = study.trials
    assert stopped.state == FAIL and "failure" not in stopped.user_attrs, outcome(done)
    # the step in whose forward pass Ctrl-C came was finished, then saved
    assert stopped.user_attrs["interrupted_at_step"] == 3
    checkpoint = Path(stopped.user_attrs["trial_dir"]) / "checkpoints" / "last.ckpt"
    assert checkpoint_step(checkpoint) == 3
    assert retry.state == WAITING and retry.system_attrs["retry_history"] == [0]
    assert retry.system_attrs["fixed_params"] == stopped.params
    assert untouched.state == WAITING and "worker" not in untouched.user_attrs  # no trial started after
    assert "trial 0 fail: interrupted at step 3, queued again" in done.stdout
    # The same command again: the retry resumes from the checkpoint, at the step where Ctrl-C stopped it.
    done = run_worker(path)
    assert done.returncode == 0, outcome(done)
    study = load_study(SweepSpec.load(path))
    retry = next(t for t in study.trials if t.system_attrs.get("retry_history") == [0])
    assert retry.state == COMPLETE and retry.user_attrs["start_step"] == 3
    assert retry.user_attrs["resumed_from"] == str(checkpoint)
    assert sorted(t.params["data.init_args.stride"] for t in study.trials if t.state == COMPLETE) == [1, 2]


@pytest.mark.parametrize("point", ["finish", "tell"])
def test_ctrl_c_at_the_end_of_a_trial_keeps_its_result_and_stops_the_sweep(tmp_path, ucf101_root, point):
    path = tiny_spec(tmp_path, ucf101_root)
    done = run_worker(path, CTRL_C=point)
    assert done.returncode == 130, outcome(done)
    study = load_study(SweepSpec.load(path))
    finished, untouched = study.trials
    assert finished.state == COMPLETE, outcome(done)  # its result was known: recorded, not redone
    assert untouched.state == WAITING and "worker" not in untouched.user_attrs, outcome(done)  # none started


def test_ctrl_c_between_trials_queues_the_claimed_trial_again(tmp_path, ucf101_root):
    path = tiny_spec(tmp_path, ucf101_root)
    done = run_worker(path, CTRL_C="claim")
    assert done.returncode == 130, outcome(done)
    study = load_study(SweepSpec.load(path))
    first, claimed, retry = study.trials
    assert first.state == COMPLETE
    assert claimed.state == FAIL and "failure" not in claimed.user_attrs and "worker" not in claimed.user_attrs
    assert retry.state == WAITING and retry.system_attrs["fixed_params"] == claimed.system_attrs["fixed_params"]


class InterruptAt(torch.nn.Module):
    """Raises KeyboardInterrupt (Python's own Ctrl-C) in the forward pass of training step `step`."""

    def __init__(self, step: int):
        super().__init__()
        self.layer, self.step, self.calls = torch.nn.Linear(2, 1), step, 0

    def forward(self, x):
        self.calls += 1
        if self.calls == self.step:
            raise KeyboardInterrupt
        return self.layer(x)


def test_a_keyboard_interrupt_saves_the_last_finished_step_but_not_a_half_updated_one(tmp_path):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    class Task(L.LightningModule):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def training_step(self, batch, batch_idx):
            return self.model(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    def fit(model, callback, optimizer_step=None):
        task = Task(model)
        if optimizer_step is not None:
            task.optimizer_step = optimizer_step.__get__(task)
        trainer = L.Trainer(max_steps=10, callbacks=[callback], logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
        loader = DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=1)
        with pytest.raises(SystemExit):  # Lightning's answer to Ctrl-C: a graceful shutdown, then exit(1)
            trainer.fit(task, loader)
        handler = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.default_int_handler if handler == signal.SIG_IGN else handler)

    first = ResumeCheckpoint(tmp_path / "a")
    fit(InterruptAt(step=4), first)  # during the 4th forward pass: 3 steps done
    assert checkpoint_step(first.path) == 3

    # During an optimizer's update (after its closure ran): a state between two steps, not saved.
    def interrupted_update(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        optimizer.step(closure=optimizer_closure)
        if batch_idx == 4:
            raise KeyboardInterrupt

    second = ResumeCheckpoint(tmp_path / "b", every_n_steps=3)
    fit(InterruptAt(step=100), second, interrupted_update)
    # 5 updates made, 4 counted: the state is neither step 4's nor step 5's; the last regular save is kept
    assert checkpoint_step(second.path) == 3


def theil_sen_slope(values: list[float]) -> float:
    """The median of the slopes between every two points: a trend that a few outliers (the allocator
    handing memory back to the system now and then, a jump of ~10 MB) do not move."""
    slopes = sorted((values[j] - values[i]) / (j - i) for i in range(len(values)) for j in range(i + 1, len(values)))
    return slopes[len(slopes) // 2]


def test_a_worker_running_many_trials_does_not_grow(tmp_path, ucf101_root):
    """20 tiny trials in one worker, each with its W&B run, compute profile, resume checkpoint and
    Lightning trainer: the resident memory after each trial stays flat once the caches of the first
    trials (imports, Optuna's and PyTorch's) are filled. A trial that left its trainer, model, data or W&B
    run behind costs ~1-2 MB; flat here is within ~0.05 MB a trial, hence the 0.3 MB bound."""
    path = tiny_spec(tmp_path, ucf101_root, steps=1, sampler="random", n_trials=20, search_space={
        "model.init_args.model": {"type": "categorical", "choices": ["lifecycle_tiny"]},
        "model.init_args.optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}})
    log = tmp_path / "rss.txt"
    done = run_worker(path, RSS_LOG=str(log))
    assert done.returncode == 0, outcome(done)
    rss = [float(line) for line in log.read_text().split()]
    assert len(rss) == 20
    slope = theil_sen_slope(rss[len(rss) // 2:])
    assert slope < 0.3, f"{slope:.2f} MB a trial; resident MB after each trial: {rss}"
