"""The command line: synthesis is deterministic, mistakes end in one line and a non-zero status."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import cli_errors
import numpy as np
import pytest

from lit_video.cli import main
from lit_video.video.decode import open_video

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> cli_errors.Result:
    """`lit-video ARGS` in a fresh interpreter: these tests cover the command's own start-up, which the
    other files' forked commands skip."""
    return cli_errors.run_lit_video(*args, fresh=True)


def test_synth_is_deterministic_with_seed(tmp_path):
    args = ["data", "synth", "--format", "ucf101", "--num-classes", "3", "--videos-per-class", "2",
            "--num-frames", "8", "--size", "32x48"]
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        assert main([*args, "--out", str(tmp_path / name), "--seed", seed]) == 0
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    video = next(f for f in files if f.suffix == ".avi")

    def frames(root):
        with open_video(root / video) as reader:
            return reader.get_frames(range(reader.num_frames)).numpy()

    assert np.array_equal(frames(tmp_path / "a"), frames(tmp_path / "b"))
    assert not np.array_equal(frames(tmp_path / "a"), frames(tmp_path / "c"))


@pytest.mark.parametrize("args, message", [
    (["data", "check", "--format", "ucf101", "--root", "/no/such/dir"], "dataset root /no/such/dir does not exist"),
    (["data", "iterate", "--format", "kinetics", "--root", "."], "is not a Kinetics root: no train annotation CSV"),
    (["data", "synth", "--format", "ucf101", "--out", "/tmp/x", "--num-classes", "40"], "num_classes must be between 2 and 12"),
])
def test_errors_are_one_line(args, message):
    result = _run(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_malformed_split_file_is_one_line(tmp_path, ucf101_root):
    import shutil

    root = tmp_path / "ucf"
    shutil.copytree(ucf101_root, root)
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("MoveRight/v_MoveRight_g08_c01.avi one\n")
    result = _run("data", "check", "--format", "ucf101", "--root", str(root))
    assert result.returncode == 2
    assert result.stderr.strip() == (f"lit-video: error: {root}/ucfTrainTestlist/trainlist01.txt:1: "
                                     "label 'one' is not in 1..4")


def test_unknown_format_is_rejected():
    result = _run("data", "check", "--format", "sports1m", "--root", ".")
    assert result.returncode == 2 and "invalid choice: 'sports1m'" in result.stderr


def test_iterate_prints_throughput(ucf101_root, capsys):
    assert main(["data", "iterate", "--format", "ucf101", "--root", str(ucf101_root), "--clip-len", "4",
                 "--resolution", "32", "--num-workers", "0", "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert "clips/s" in out and "batch shape (4, 3, 4, 32, 32)" in out


@pytest.mark.parametrize("extra, message", [
    (["--data.init_args.clip_lenn", "4"], "Option 'clip_lenn' is not accepted"),
    (["--data.init_args.root", "/no/such/root"], "dataset root /no/such/root does not exist"),
    (["--model.init_args.model", "resnet9000"], "unknown model 'resnet9000'"),
    (["--model.init_args.model_kwargs", "{widthz: 3}"], "model 'r2plus1d': got an unexpected keyword argument 'widthz'"),
])
def test_fit_config_errors_are_one_line(ucf101_root, extra, message):
    config = "experiments/synthetic/r2plus1d_tiny.yaml"
    result = _run("fit", "--config", config, "--data.init_args.root", str(ucf101_root), *extra)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert message in lines[-1] and lines[-1].startswith("lit-video: error:") and "Traceback" not in result.stderr


def test_help_lists_every_command():
    result = _run("--help")
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("    ") and line.split()}
    assert result.returncode == 0
    assert {"data", "fit", "validate", "test", "predict", "profile", "evaluate", "sweep", "report",
            "dashboard"} <= listed


def test_a_forked_command_is_the_fresh_process_it_stands_in_for(tmp_path, monkeypatch):
    """`run_lit_video` forks commands from a launcher with the imports done (tests/forked_cli.py): each
    gets the folder, environment, stdin and streams it was given and ends with the status a fresh
    interpreter gives it."""
    synth = ["data", "synth", "--format", "ucf101", "--out", "relative", "--num-classes", "2",
             "--videos-per-class", "1", "--num-frames", "4", "--size", "16x16"]
    launcher = cli_errors._launcher()
    forked_before = launcher.commands
    results = {}
    for name, fresh in (("forked", False), ("fresh", True)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "bad.yaml").write_text("trainer: [unclosed\n")
        monkeypatch.setenv("LIT_VIDEO_SIGN", name)  # read by nobody: must not send the command to a fresh interpreter
        made, bad_config, no_spec = (cli_errors.run_lit_video(*args, cwd=folder, fresh=fresh, input=stdin)
                                     for args, stdin in ((synth, None), (["fit", "--config", "bad.yaml"], "x\n"),
                                                         (["sweep", "nope.yaml"], None)))
        assert made.returncode == 0 and (folder / "relative" / "ucfTrainTestlist").is_dir(), made
        assert bad_config.returncode == 2 and "bad.yaml" in bad_config.stderr, bad_config
        results[name] = (made.returncode, bad_config, no_spec)
    assert results["forked"] == results["fresh"]
    assert launcher.commands == forked_before + 3 and launcher.launcher.poll() is None
    import optuna

    storage = f"sqlite:///{tmp_path / 'study.db'}"
    optuna.create_study(storage=storage, study_name="served")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(subprocess.TimeoutExpired):  # a command that outlives its timeout is killed
        cli_errors.run_lit_video("dashboard", "--storage", storage, "--port", str(port), timeout=5)
    assert cli_errors.run_lit_video("--help").returncode == 0


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_lightning_commands_print_lightning_clis_help(command):
    result = _run(command, "--help")
    assert result.returncode == 0 and "--trainer.max_epochs" in result.stdout and "--config" in result.stdout


def test_profile_takes_the_number_of_classes_from_the_data_when_its_root_exists(tmp_path, ucf101_root):
    """The task is built as `fit` builds it: the DataModule links its classes; without the data, --num-classes
    stands in for them."""
    import csv

    import yaml

    from lit_video.data.base import datamodule_class

    recipe = yaml.safe_load((Path(__file__).resolve().parents[1] / "experiments/synthetic/r2plus1d_tiny.yaml").read_text())
    classes = datamodule_class("ucf101")(root=str(ucf101_root)).num_classes

    def params(root, *flags: str) -> int:
        recipe["data"]["init_args"]["root"] = str(root)
        config, out = tmp_path / "profiled.yaml", tmp_path / "profile.csv"
        config.write_text(yaml.safe_dump(recipe))
        assert main(["profile", "--config", str(config), "--steps", "0", "--device", "cpu", "--out", str(out),
                     *flags]) == 0
        (row,) = list(csv.DictReader(out.open()))
        return int(row["params"])

    from_data = params(ucf101_root)
    assert from_data == params(tmp_path / "absent", "--num-classes", str(classes))
    assert from_data < params(ucf101_root, "--num-classes", str(classes + 10))  # given, it wins


@pytest.mark.parametrize("value, parsed", [("1", 1), ("3", 3), ("0.5", 0.5), ("1.0", 1.0)])
def test_a_batch_limit_given_as_an_integer_counts_batches(ucf101_root, value, parsed):
    """`--trainer.limit_val_batches 1` is one batch; 1.0 is all of them (the Trainer tells them apart by type)."""
    from lit_video.training import run_cli

    cli = run_cli(["--config", str(ROOT / "experiments" / "synthetic" / "r2plus1d_tiny.yaml"),
                   "--data.init_args.root", str(ucf101_root), "--trainer.logger", "false",
                   "--trainer.limit_val_batches", value, "--trainer.limit_train_batches", value], run=False)
    for limit in (cli.trainer.limit_val_batches, cli.trainer.limit_train_batches):
        assert limit == parsed and type(limit) is type(parsed)
