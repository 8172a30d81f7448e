"""Bad input to `lit-video data flow` and to the flow modalities ends in one line, never in a traceback or a
silent success: unknown methods and modalities, bounds and worker counts out of range, raft without weights,
a store that is missing, incomplete or malformed, and tasks that read RGB only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.data.flow import compute_dataset_flow
from lit_video.data.formats.ucf101 import UCF101DataModule
from lit_video.data.synthetic import synthesize
from lit_video.data.synthetic.spec import SynthSpec
from lit_video.errors import LitVideoError
from lit_video.video.flow import flow_folder, read_store_info, store_folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A UCF101-layout dataset with stored farneback flow, one training video's flow missing."""
    root = tmp_path_factory.mktemp("ucf101_flow")
    synthesize("ucf101", root, SynthSpec(num_classes=2, videos_per_class=3, num_frames=6, size=(32, 48), seed=4))
    compute_dataset_flow("ucf101", root, "farneback")
    return root


def flow_command(root: Path, *options: str, **kwargs):
    return run_lit_video("data", "flow", "--format", "ucf101", "--root", root, *options, **kwargs)


def iterate(root: Path, *options: str):
    return run_lit_video("data", "iterate", "--format", "ucf101", "--root", root, "--clip-len", "2",
                         "--resolution", "32", "--batch-size", "2", "--num-workers", "0", *options)


@pytest.mark.parametrize("options, fragments", [
    (["--method", "flownet"], ["--method", "tvl1, farneback, raft", "flownet"]),
    (["--bound", "-3"], ["--bound", "positive", "-3"]),
    (["--workers", "0"], ["--workers", "positive integer"]),
])
def test_flow_command_refuses_bad_arguments(tiny_root, options, fragments):
    before = sorted(p.relative_to(tiny_root) for p in (tiny_root / "flow").rglob("*"))
    assert_one_line_error(flow_command(tiny_root, *options), *fragments)
    assert sorted(p.relative_to(tiny_root) for p in (tiny_root / "flow").rglob("*")) == before  # nothing written
    assert not store_folder(tiny_root, "flownet").exists()


def test_raft_without_weights_is_one_line(tiny_root, tmp_path):
    result = flow_command(tiny_root, "--method", "raft", env={"TORCH_HOME": str(tmp_path / "empty_hub")})
    assert_one_line_error(result, "raft needs weights", "--weights", "raft_large")
    assert not store_folder(tiny_root, "raft").exists()


def test_flow_arguments_checked_in_the_library(tiny_root, tmp_path):
    for kwargs, fragment in (({"short_side": 0}, "--short-side"), ({"bound": float("nan")}, "--bound"),
                             ({"method": "raft", "weights": str(tmp_path / "none.pth")}, "no such checkpoint"),
                             ({"weights": str(tmp_path / "none.pth")}, "applies to --method raft"),
                             ({"subsets": ["training"]}, "--subset")):
        with pytest.raises(LitVideoError, match=fragment):
            compute_dataset_flow("ucf101", tiny_root, **{"method": "farneback", **kwargs})
    # a store keeps one bound: completing it with another would mix two quantisations
    with pytest.raises(LitVideoError, match="bound 20.0, not 10.0"):
        compute_dataset_flow("ucf101", tiny_root, "farneback", bound=10)
    assert read_store_info(tiny_root, "farneback")["bound"] == 20.0
    for kwargs, fragment in (({"modality": "depth"}, "modality must be one of"),
                             ({"modality": "flow", "flow_method": "pwc"}, "flow_method must be one of"),
                             ({"modality": "flow", "flow_source": "gpu"}, "flow_source must be one of")):
        with pytest.raises(LitVideoError, match=fragment):
            UCF101DataModule(str(tiny_root), num_workers=0, **kwargs)


def test_reading_a_missing_store_names_the_command(tiny_root):
    result = iterate(tiny_root, "--modality", "flow", "--flow-method", "tvl1")
    assert_one_line_error(result, "no stored tvl1 flow", "flow.json",
                          f"lit-video data flow --format ucf101 --root {tiny_root} --method tvl1")


def test_an_incomplete_store_names_the_count_and_the_first_folder(tiny_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_root, root)
    datamodule = UCF101DataModule(str(root), num_workers=0)
    first = flow_folder(root, datamodule.records("train")[0].path, "farneback")
    shutil.rmtree(first)
    result = iterate(root, "--modality", "rgb+flow", "--flow-method", "farneback")
    assert_one_line_error(result, "1 of", "train videos have no stored farneback flow", str(first),
                          f"lit-video data flow --format ucf101 --root {root} --method farneback")
    # what the command it names does completes the store
    assert compute_dataset_flow("ucf101", root, "farneback").computed == 1
    assert first.is_dir()


def test_a_malformed_store_description_is_one_line(tiny_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_root, root)
    info = store_folder(root, "farneback") / "flow.json"
    info.write_text(json.dumps({"method": "farneback", "bound": "twenty"}))
    assert_one_line_error(iterate(root, "--modality", "flow", "--flow-method", "farneback"), str(info), "malformed",
                          "bound")
    info.write_text("{not json")
    with pytest.raises(LitVideoError, match="flow.json: malformed"):  # completing the store reads it first
        compute_dataset_flow("ucf101", root, "farneback")


def test_unknown_modality_is_one_line(tiny_root):
    assert_one_line_error(iterate(tiny_root, "--modality", "depth"), "modality must be one of", "depth")


def test_a_task_that_reads_rgb_only_refuses_flow(tiny_root):
    result = run_lit_video("fit", "--config", REPO / "experiments/synthetic/caption_tiny.yaml",
                           "--data.init_args.root", tiny_root, "--data.init_args.modality", "flow")
    assert_one_line_error(result, "data.init_args.modality is 'flow'", "VideoCaptioning", "RGB clips only")


def test_an_unreadable_video_is_named_skipped_and_fails_the_command(tiny_root, tmp_path, capsys):
    from lit_video.cli import main

    root = tmp_path / "copy"
    shutil.copytree(tiny_root, root, ignore=shutil.ignore_patterns("flow"))
    broken = UCF101DataModule(str(root), num_workers=0).records("train")[0].path
    Path(broken).write_bytes(b"not a video")
    with pytest.warns(UserWarning, match=f"flow of {broken} not computed"):
        status = main(["data", "flow", "--format", "ucf101", "--root", str(root), "--method", "farneback"])
    assert status == 1
    assert "5 computed, 0 skipped as complete, 1 failed" in capsys.readouterr().out
    assert not flow_folder(root, broken, "farneback").exists()
    assert not [p for p in (root / "flow").rglob("*") if p.name.endswith(".partial")]
