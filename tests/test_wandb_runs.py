"""W&B runs of plain `fit` / `validate` runs and checkpoint artifacts, on real offline runs read back with the
wandb CLI (`wandb leet inspect`): the run's config, compute profile, group, job type and tags; the best
checkpoint as a `model` artifact whose file reproduces its logged score; the switches that turn W&B off; no
secret in any file of a run; a sweep trial's artifact carries the trial's parameters.

The test session runs with WANDB_MODE=disabled (tests/conftest.py); each test here turns offline runs on.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error, run_lit_video
from conftest import REPO, write_spec

from lit_video.checkpoint import read_checkpoint
from lit_video.run_cost import ComputeProfileCallback
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.study import run_sweep
from lit_video.training import run_cli
from lit_video.wandb_runs import (
    offline_runs,
    read_offline_records,
    read_offline_run,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RECIPES = REPO / "experiments" / "synthetic"
# (a limit of 1 would read as 1.0: every batch)
TINY = ["--data.init_args.num_workers", "0", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.num_sanity_val_steps", "0"]


def run_record(run_dir: Path) -> dict:
    """The run record of an offline run: group, job type, tags, name."""
    return next(r["run"] for r in read_offline_records(run_dir) if r["type"] == "run")


def model_artifacts(run_dir: Path) -> list[dict]:
    """The `model` artifacts an offline run logged, with their metadata as a dict, in the order logged."""
    found = [r["artifact"] for r in read_offline_records(run_dir)
             if r["type"] == "artifact" and r["artifact"]["type"] == "model"]  # not the tables of validation media
    for artifact in found:
        artifact["metadata"] = json.loads(artifact["metadata"])
    return found


def test_fit_logs_its_config_compute_and_best_checkpoint_which_reproduces_its_score(offline, ucf101_root):
    recipe = RECIPES / "r2plus1d_tiny.yaml"
    common = ["--config", str(recipe), "--data.init_args.root", str(ucf101_root), "--trainer.default_root_dir",
              str(offline), "--trainer.limit_val_batches", "2", *TINY]
    cli = run_cli(["fit", *common, "--trainer.max_epochs", "2",
                   "--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
                   "--trainer.callbacks.monitor=val/loss", "--trainer.callbacks.save_last=true"])
    (run_dir,) = offline_runs(offline)  # <default_root_dir>/wandb/offline-run-*
    run = read_offline_run(run_dir)
    assert run["state"] == "finished" and run["exit_code"] == 0
    assert run["project"] == "lit-video" and run["name"] == "version_0"
    assert set(run["tags"]) == {"classification", "r2plus1d", "ucf101"}
    record = run_record(run_dir)
    assert record["run_group"] == "r2plus1d_tiny" and record["job_type"] == "fit"
    # the resolved config, as a sweep trial's: the recipe, the command line and the linked values
    config = run["config"]
    assert config["model"]["init_args"]["model"] == "r2plus1d"
    assert config["model"]["init_args"]["num_classes"] == 4  # linked from the dataset when the classes are built
    assert config["data"]["init_args"]["root"] == str(ucf101_root)
    assert config["data"]["init_args"]["clip_len"] == 8 and config["trainer"]["max_epochs"] == 2
    assert "wandb" not in config
    cost = next(c for c in cli.trainer.callbacks if isinstance(c, ComputeProfileCallback)).metrics()
    for key in ("gflops", "params", "train_gflops_per_clip", "train_pflops_total", "peak_memory_mb",
                "eval_gflops_per_video"):
        assert config["compute"][key] == pytest.approx(cost[f"compute/{key}"])
    assert (offline / "lightning_logs" / "version_0" / "metrics.csv").is_file()  # the CSV log stays
    assert not list(Path.cwd().iterdir())

    # the best checkpoint as a `model` artifact, its file staged for `wandb sync`
    callback = cli.trainer.checkpoint_callback
    artifacts = model_artifacts(run_dir)
    assert {a["name"] for a in artifacts} == {f"model-{run['run_id']}"}
    (best,) = [a for a in artifacts if "best" in a["aliases"]]
    assert "latest" in artifacts[-1]["aliases"]
    metadata = best["metadata"]
    assert metadata["monitor"] == "val/loss" and metadata["mode"] == "min"
    assert metadata["score"] == pytest.approx(callback.best_model_score.item(), abs=1e-7)
    assert metadata["original_filename"] == Path(callback.best_model_path).name
    (entry,) = best["manifest"]["contents"]
    staged = Path(entry["local_path"])
    assert entry["path"] == "model.ckpt" and staged.is_relative_to(offline.parent / "w-home")
    checkpoint = read_checkpoint(staged)  # read as data, as every lit-video checkpoint
    assert (metadata["epoch"], metadata["global_step"]) == (checkpoint["epoch"], checkpoint["global_step"])
    assert staged.read_bytes() == Path(callback.best_model_path).read_bytes()

    # validating the artifact's weights on the same data gives the logged score; that run is a run of its own
    validated = run_cli(["validate", *common, "--ckpt_path", str(staged)])
    assert validated.trainer.callback_metrics["val/loss"].item() == pytest.approx(metadata["score"], abs=1e-6)
    runs = offline_runs(offline)
    assert len(runs) == 2
    record = run_record(runs[-1] if runs[-1] != run_dir else runs[0])
    assert record["job_type"] == "validate" and record["run_group"] == "r2plus1d_tiny"


@pytest.mark.parametrize("recipe, root, extra", [
    ("vos_stm_tiny", "davis_root", ["--trainer.limit_val_batches", "0"]),
    ("vis_offline_tiny", "ytvis_root", ["--trainer.limit_val_batches", "2", "--trainer.check_val_every_n_epoch", "1"]),
    # the task and the DataModule both have a `tokenizer` argument: only the task's is logged
    ("caption_tiny", "msrvtt_root", ["--trainer.limit_val_batches", "0"]),
])
def test_fit_of_each_task_recipe_logs_a_run_with_its_config_compute_group_and_tags(offline, recipe, root, extra,
                                                                                    request):
    root = request.getfixturevalue(root)
    run_cli(["fit", "--config", str(RECIPES / f"{recipe}.yaml"), "--data.init_args.root", str(root),
             "--data.init_args.batch_size", "2", "--trainer.default_root_dir", str(offline), *TINY, *extra,
             "--wandb.tags", "[smoke]"])
    (run_dir,) = offline_runs(offline)
    run = read_offline_run(run_dir)
    task, model, data_format = {"vos_stm_tiny": ("vos", "stm", "davis"),
                                "vis_offline_tiny": ("vis", "query_vis", "youtube_vis"),
                                "caption_tiny": ("captioning", "caption_transformer", "msrvtt")}[recipe]
    assert run["state"] == "finished" and set(run["tags"]) == {task, model, data_format, "smoke"}
    config = run["config"]
    assert config["model"]["init_args"]["model"] == model and config["data"]["init_args"]["root"] == str(root)
    assert config["data"]["init_args"]["batch_size"] == 2
    assert config["compute"]["gflops"] > 0 and config["compute"]["train_steps"] == 2
    record = run_record(run_dir)
    assert (record["run_group"], record["job_type"], record["display_name"]) == (recipe, "fit", "version_0")


@pytest.mark.parametrize("switch", ["trainer.logger false", "WANDB_MODE=disabled", "wandb.mode disabled",
                                    "trainer.logger CSVLogger"])
def test_w_and_b_turned_off_writes_no_run(offline, ucf101_root, monkeypatch, switch):
    import wandb
    from lightning.pytorch.loggers import WandbLogger

    extra = []
    if switch.startswith("WANDB_MODE"):
        monkeypatch.setenv("WANDB_MODE", "disabled")
    elif switch == "wandb.mode disabled":  # the config's mode, when WANDB_MODE does not override it
        monkeypatch.delenv("WANDB_MODE")
        extra = ["--wandb.mode", "disabled"]
    elif switch == "trainer.logger CSVLogger":  # a logger given explicitly is used as given
        extra = ["--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
                 "--trainer.logger.save_dir", str(offline)]
    else:
        extra = ["--trainer.logger", "false"]
    cli = run_cli(["validate", "--config", str(RECIPES / "r2plus1d_tiny.yaml"), "--data.init_args.root",
                   str(ucf101_root), "--trainer.default_root_dir", str(offline), "--trainer.limit_val_batches", "2",
                   *TINY, *extra])
    assert "val/loss" in cli.trainer.callback_metrics  # it ran
    assert wandb.run is None
    assert not [path for path in offline.parent.rglob("*") if "wandb" in path.name]
    assert not (offline.parent / "w-home").exists()
    assert not any(isinstance(logger, WandbLogger) for logger in cli.trainer.loggers)


def test_no_secret_reaches_any_file_of_a_run(offline, ucf101_root, monkeypatch):
    api_key = "Ak9q" + "0123456789abcdef" * 2 + "Zk9q"  # 40 characters, as a W&B key
    password = "Pw7x-secret-Qw7x"
    storage = f"postgresql://lit:{password}@127.0.0.1:5432/optuna"
    monkeypatch.setenv("WANDB_API_KEY", api_key)  # logged in: WANDB_MODE=offline still wins
    monkeypatch.setenv("LIT_VIDEO_STORAGE", storage)
    args = ["validate", "--config", str(RECIPES / "r2plus1d_tiny.yaml"), "--data.init_args.root", str(ucf101_root),
            "--trainer.default_root_dir", str(offline), "--trainer.limit_val_batches", "2", *TINY,
            # a string of the config that holds a password (read by `predict` only)
            "--model.init_args.predictions_path", f"https://user:{password}@example.com/p.jsonl?token={api_key}"]
    monkeypatch.setattr(sys, "argv", ["lit-video", *args, "--storage", storage])
    run_cli(args)
    (run_dir,) = offline_runs(offline)
    run = read_offline_run(run_dir)
    assert run["config"]["model"]["init_args"]["predictions_path"].startswith("https://user:***@example.com")
    # every file W&B wrote: the run's folder, its staging and cache folders
    files = [path for folder in (offline / "wandb", offline.parent / "w-home") for path in folder.rglob("*")
             if path.is_file()]
    assert any(path.suffix == ".wandb" for path in files)
    leaks = [f"{path}: {secret}" for path in files for secret in (api_key, password, api_key[4:-4])
             if secret.encode() in path.read_bytes()]
    assert not leaks


def test_a_sweep_trials_checkpoint_artifact_carries_its_parameters(offline, ucf101_root, tmp_path):
    budget = {"max_epochs": 1, "limit_train_batches": 2, "limit_val_batches": 1, "enable_progress_bar": False,
              "logger": False}  # checkpoints on: Lightning's default ModelCheckpoint
    spec = SweepSpec.load(write_spec(tmp_path, ucf101_root, budget=budget, search_space={
        "data.init_args.clip_len": {"type": "categorical", "choices": [4]}}))
    (trial,) = run_sweep(spec).trials
    assert "wandb" not in read_offline_run(trial.user_attrs["wandb_dir"])["config"]  # the run's own settings
    (artifact,) = model_artifacts(Path(trial.user_attrs["wandb_dir"]))
    metadata = artifact["metadata"]
    assert metadata["sweep"]["values"] == {"data.init_args.clip_len": 4}
    assert metadata["sweep"]["trial"] == trial.number and metadata["sweep"]["study"] == "test"
    assert (metadata["epoch"], metadata["global_step"]) == (0, 2)
    assert set(artifact["aliases"]) == {"best", "latest"}
    staged = read_checkpoint(artifact["manifest"]["contents"][0]["local_path"])
    assert staged["global_step"] == 2 and staged["state_dict"]
    # the trial's run also holds what the model did (tests/test_validation_media.py): a row per validated video
    # and their confusion matrix
    tables = {entry["path"]: json.loads(Path(entry["local_path"]).read_text())
              for r in read_offline_records(Path(trial.user_attrs["wandb_dir"])) if r["type"] == "artifact"
              for entry in r["artifact"]["manifest"]["contents"] if entry["path"].endswith(".table.json")}
    videos = len(tables["val/videos.table.json"]["data"])
    assert videos >= 8 and sum(row[2] for row in tables["val/confusion_matrix_table.table.json"]["data"]) == videos


def test_a_bad_w_and_b_mode_is_one_line_naming_it(tmp_path, ucf101_root):
    common = ["fit", "--config", RECIPES / "r2plus1d_tiny.yaml", "--data.init_args.root", ucf101_root,
              "--trainer.default_root_dir", tmp_path / "out", *TINY]
    result = run_lit_video(*common, "--wandb.mode", "onlin", cwd=tmp_path)
    assert_one_line_error(result, "wandb.mode", "offline")
    result = run_lit_video(*common, cwd=tmp_path, env={"WANDB_MODE": "ofline"})
    assert_one_line_error(result, "WANDB_MODE='ofline'", "expected one of online, offline, disabled")
    assert not (tmp_path / "out").exists()
