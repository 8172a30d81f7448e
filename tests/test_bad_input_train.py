"""fit / validate / test / predict on bad input: checkpoints (remote, damaged, code-carrying, disagreeing with
the command line), task and trainer arguments, optimizer choices; each ends in one line, status 2."""

from __future__ import annotations

import functools
import http.server
import pathlib
import threading
from pathlib import Path

import pytest
import torch
from cli_errors import assert_one_line_error, run_lit_video
from conftest import TINY_EXPERIMENT

from lit_video.errors import LitVideoError


class _TouchOnLoad:
    """Unpickling it creates `path`: what a checkpoint that runs code on loading would do."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return pathlib.Path.touch, (pathlib.Path(self.path),)


def _common(root: Path, out: Path) -> list[str]:
    return ["--config", str(TINY_EXPERIMENT), "--data.init_args.root", str(root), "--data.init_args.num_workers", "0",
            "--data.init_args.batch_size", "4", "--trainer.limit_val_batches", "1", "--trainer.limit_predict_batches",
            "1", "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--trainer.default_root_dir", str(out), "--model.init_args.predictions_path", str(out / "pred.jsonl")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ucf101_root) -> Path:
    """A checkpoint of the tiny R(2+1)D after one training step."""
    out = tmp_path_factory.mktemp("trained")
    result = run_lit_video("fit", *_common(ucf101_root, out), "--trainer.max_epochs", "1",
                           "--trainer.limit_train_batches", "1")
    assert result.returncode == 0, result.output[-3000:]
    (checkpoint,) = out.rglob("*.ckpt")
    return checkpoint


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A folder served over HTTP on 127.0.0.1 -> (folder, base URL)."""
    folder = tmp_path_factory.mktemp("served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_checkpoint_that_would_run_code_is_refused_by_url_and_as_a_file(tmp_path, served, ucf101_root):
    folder, url = served
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": _TouchOnLoad(marker)}, folder / "x.ckpt")
    # torch.hub's cache must not matter: a fresh one per command
    env = {"TORCH_HOME": str(tmp_path / "torch_home")}
    for command, ckpt_path in (("validate", f"{url}/x.ckpt"), ("predict", f"{url}/x.ckpt"),
                               ("validate", str(folder / "x.ckpt"))):
        result = run_lit_video(command, *_common(ucf101_root, tmp_path / "out"), "--ckpt_path", ckpt_path, env=env)
        assert_one_line_error(result, ckpt_path, "refused", "run code")
        assert not marker.exists(), f"{command} {ckpt_path} ran the checkpoint's code"
    result = run_lit_video("validate", *_common(ucf101_root, tmp_path / "out"), "--ckpt_path", f"{url}/x.ckpt",
                           "--weights_only", "false", env=env)
    assert_one_line_error(result, "--weights_only false is refused")
    assert not marker.exists()


def test_every_ckpt_path_failure_is_one_line_naming_it(tmp_path, served, ucf101_root):
    folder, url = served
    (tmp_path / "empty.ckpt").write_bytes(b"")
    (tmp_path / "garbage.ckpt").write_text("not a checkpoint\n")
    (tmp_path / "a_folder").mkdir()
    cases = [
        (str(tmp_path / "missing.ckpt"), "does not exist"),
        (str(tmp_path / "a_folder"), "is a folder"),
        (str(tmp_path / "empty.ckpt"), "is empty"),
        (str(tmp_path / "garbage.ckpt"), "is not a checkpoint"),
        (f"{url}/missing.ckpt", "cannot download"),
        ("best", "no checkpoint exists yet"),
        ("last", "no checkpoint exists yet"),  # Lightning would evaluate the untrained model
    ]
    for ckpt_path, reason in cases:
        result = run_lit_video("validate", *_common(ucf101_root, tmp_path / "out"), "--ckpt_path", ckpt_path)
        assert_one_line_error(result, f"{ckpt_path}", reason)


def test_a_truncated_checkpoint_is_one_line(tmp_path, trained, ucf101_root):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(trained.read_bytes()[:50_000])
    result = run_lit_video("test", *_common(ucf101_root, tmp_path / "out"), "--ckpt_path", truncated)
    assert_one_line_error(result, str(truncated), "not a readable checkpoint")


def test_an_argument_that_disagrees_with_the_checkpoint_is_an_error(tmp_path, trained, served, ucf101_root):
    folder, url = served
    result = run_lit_video("predict", *_common(ucf101_root, tmp_path / "out"), "--ckpt_path", trained,
                           "--model.init_args.model", "c3d")
    assert_one_line_error(result, "model.init_args.model", "'c3d'", "'r2plus1d'")
    assert not (tmp_path / "out" / "pred.jsonl").exists()
    # the same checkpoint by URL, with an argument equal to the checkpoint's: it predicts
    (folder / "good.ckpt").write_bytes(trained.read_bytes())
    result = run_lit_video("predict", *_common(ucf101_root, tmp_path / "out"), "--ckpt_path", f"{url}/good.ckpt",
                           "--model.init_args.model", "r2plus1d", env={"TORCH_HOME": str(tmp_path / "torch_home")})
    assert result.returncode == 0, result.output[-3000:]
    assert (tmp_path / "out" / "pred.jsonl").read_text().count("video_id") >= 1


@pytest.mark.parametrize("extra, fragments", [
    (["--model.init_args.optimizer.lr", "-1"], ["model.init_args.optimizer.lr", "> 0", "-1"]),
    (["--trainer.max_epochs", "-5"], ["trainer.max_epochs", ">= -1", "-5"]),
    (["--model.init_args.model_kwargs", "{widths: [16]}"], ["model 'r2plus1d'", "widths", "4 stages"]),
    (["--model.init_args.optimizer.name", "adam"], ["model.init_args.optimizer.name", "'adamw', 'sgd'", "adam"]),
    (["--model.init_args.optimizer.schedule", "step"], ["optimizer.schedule", "'cosine', 'constant'", "step"]),
    (["--model.init_args.label_smoothing", "1.5"], ["model.init_args.label_smoothing", "1.5"]),
])
def test_task_and_trainer_arguments_are_checked(tmp_path, ucf101_root, extra, fragments):
    result = run_lit_video("validate", *_common(ucf101_root, tmp_path / "out"), *extra)
    assert_one_line_error(result, *fragments)


def test_a_missing_config_file_is_one_line_that_says_so_once(tmp_path):
    missing = tmp_path / "no_such_recipe.yaml"
    line = assert_one_line_error(run_lit_video("fit", "--config", missing), '"config"', str(missing), "does not exist")
    assert line.lower().count("does not exist") == 1, line


def test_a_log_folder_that_is_a_file_is_an_error(tmp_path, ucf101_root):
    file = tmp_path / "a_file"
    file.write_text("keep me\n")
    result = run_lit_video("validate", *_common(ucf101_root, file), "--trainer.default_root_dir", file)
    assert_one_line_error(result, "trainer.default_root_dir", str(file), "not a folder")
    assert file.read_text() == "keep me\n"


def test_the_python_api_checks_the_same_arguments():
    from lit_video.tasks.classification import VideoClassifier
    from lit_video.tasks.optim import OptimizerConfig

    tiny = {"widths": [4, 4, 4, 4], "layers": [1, 1, 1, 1]}
    with pytest.raises(LitVideoError, match=r"optimizer\.lr must be a number > 0, got -1"):
        VideoClassifier("r2plus1d", tiny, num_classes=3, optimizer=OptimizerConfig(lr=-1))
    with pytest.raises(LitVideoError, match=r"optimizer\.name must be one of adamw, sgd, got 'adam'"):
        VideoClassifier("r2plus1d", tiny, num_classes=3, optimizer={"name": "adam"})
    with pytest.raises(LitVideoError, match="num_classes must be an integer >= 2"):
        VideoClassifier("r2plus1d", tiny, num_classes=1)
    with pytest.raises(LitVideoError, match="clip_len must be an integer >= 1"):
        VideoClassifier("r2plus1d", tiny, num_classes=3, clip_len=0)
    with pytest.raises(LitVideoError, match="rejects its arguments"):
        VideoClassifier("r2plus1d", {"widths": [4]}, num_classes=3)


def test_a_checkpoint_for_other_data_is_an_error(tmp_path, trained):
    from lit_video.data.synthetic import synthesize
    from lit_video.data.synthetic.spec import SynthSpec

    three_classes = tmp_path / "ucf3"
    synthesize("ucf101", three_classes, SynthSpec(num_classes=3, videos_per_class=2, num_frames=16, size=(32, 48)))
    result = run_lit_video("validate", *_common(three_classes, tmp_path / "out"), "--ckpt_path", trained)
    assert_one_line_error(result, str(trained), "num_classes 4", "the data gives 3")


def test_predict_with_a_checkpoint_of_a_task_without_classes(tmp_path):
    """LightningCLI records the link from data.num_classes in every task's hyperparameters, also where the task
    takes no such argument (VOS): given back to it, the checkpoint must still load."""
    from lit_video.data.synthetic.vos import VosSynthSpec, write_davis
    from lit_video.tasks.vos import VideoObjectSegmentation

    davis_root = tmp_path / "davis"
    write_davis(davis_root, VosSynthSpec(num_videos=4, num_frames=6, size=(64, 64), seed=0))

    tiny = {"width": 8, "blocks": 1, "decoder_dim": 8}
    # the experiment's own arguments, as `fit --config` would have saved them
    optimizer = {"name": "adamw", "lr": 0.005, "weight_decay": 0.0, "warmup_epochs": 0.5}
    task = VideoObjectSegmentation("masktrack", tiny, clip_len=3, resolution=32, mem_every=1, optimizer=optimizer)
    hparams = {"_class_path": "lit_video.tasks.vos.VideoObjectSegmentation", **task.hparams, "num_classes": 0,
               "_instantiator": "lightning.pytorch.cli.instantiate_module"}
    checkpoint = tmp_path / "vos.ckpt"
    torch.save({"state_dict": task.state_dict(), "hyper_parameters": hparams, "epoch": 0, "global_step": 0,
                "pytorch-lightning_version": "2.6.6"}, checkpoint)
    config = TINY_EXPERIMENT.parent / "vos_masktrack_tiny.yaml"
    result = run_lit_video("predict", "--config", config, "--data.init_args.root", davis_root,
                           "--data.init_args.num_workers", "0", "--data.init_args.batch_size", "2",
                           "--data.init_args.resolution", "32", "--data.init_args.eval_resolution", "32",
                           "--trainer.precision", "32", "--trainer.logger", "false",
                           "--trainer.default_root_dir", tmp_path / "run",
                           "--trainer.enable_progress_bar", "false", "--trainer.limit_predict_batches", "1",
                           "--model.init_args.model_kwargs", str(tiny), "--model.init_args.predictions_path",
                           tmp_path / "pred", "--ckpt_path", checkpoint)
    assert result.returncode == 0, result.output[-3000:]
    assert any((tmp_path / "pred").rglob("*.png"))


def test_load_from_checkpoint_reads_a_url_as_data(tmp_path, served, monkeypatch):
    import pickle

    from lit_video.tasks.classification import VideoClassifier

    folder, url = served
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "hyper_parameters": {}, "payload": _TouchOnLoad(marker)}, folder / "api.ckpt")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # torch.hub's download cache
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        VideoClassifier.load_from_checkpoint(f"{url}/api.ckpt")
    assert not marker.exists()


def test_read_checkpoint_takes_a_python_built_tasks_optimizer_config(tmp_path):
    from lit_video.checkpoint import read_checkpoint
    from lit_video.tasks.optim import OptimizerConfig

    path = tmp_path / "api.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"optimizer": OptimizerConfig(lr=0.1)}}, path)
    assert read_checkpoint(path)["hyper_parameters"]["optimizer"].lr == 0.1
    torch.save([1, 2], path)
    with pytest.raises(LitVideoError, match="not a Lightning checkpoint"):
        read_checkpoint(path)
