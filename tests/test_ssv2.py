"""Something-Something V2 as released: labels.json (template -> index as a string), the train / validation
lists (bracketed templates, the class is the template without brackets) and the unlabelled test list; bad
entries, missing videos, the synthetic copy read back as webm clips, no flips by default, and a temporal
model learning the synthetic template classes that a frame model cannot."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.cli import main
from lit_video.data.formats.ssv2 import SSv2DataModule, parse_labels
from lit_video.data.synthetic import synthesize
from lit_video.data.synthetic.spec import SynthSpec
from lit_video.errors import DatasetLayoutError
from lit_video.training import run_cli
from lit_video.video.encode import write_video

# In the released files: indices are strings, templates in labels.json have no brackets, list entries do.
LABELS = {"Moving something from right to left": "2", "Holding something next to something": "0",
          "Moving something from left to right": "1"}
TRAIN = [
    {"id": "78687", "label": "holding potato next to vicks vaporub bottle",
     "template": "Holding [something] next to [something]", "placeholders": ["potato", "vicks vaporub bottle"]},
    {"id": "42326", "label": "moving pen from left to right", "template": "Moving [something] from left to right",
     "placeholders": ["pen"]},
    {"id": "100904", "label": "moving a cup from right to left", "template": "Moving [something] from right to left",
     "placeholders": ["a cup"]},
]
VALIDATION = [{"id": "74225", "label": "moving mug from left to right",
               "template": "Moving [something] from left to right", "placeholders": ["mug"]}]
TEST = [{"id": "1420"}, {"id": "7"}]


def write_root(root: Path, train=TRAIN, validation=VALIDATION, test=TEST, labels_dir: str = "labels",
               videos_dir: str = "20bn-something-something-v2") -> Path:
    """A hand-written SSv2 root: the label files in `labels_dir` ("" = the root) and an empty videos folder."""
    folder = root / labels_dir
    folder.mkdir(parents=True, exist_ok=True)
    (root / videos_dir).mkdir(exist_ok=True)
    (folder / "labels.json").write_text(json.dumps(LABELS, indent=4))
    for name, entries in (("train", train), ("validation", validation), ("test", test)):
        (folder / f"something-something-v2-{name}.json").write_text(json.dumps(entries))
    return root


def write_webm(path: Path, frames: np.ndarray | None = None) -> None:
    write_video(path, np.full((6, 32, 48, 3), 128, np.uint8) if frames is None else frames, fps=12)


def test_the_released_files_are_read_as_released(tmp_path):
    dm = SSv2DataModule(str(write_root(tmp_path)), num_workers=0)
    # ordered by the string index, brackets gone
    assert dm.classes == ["Holding something next to something", "Moving something from left to right",
                          "Moving something from right to left"]
    videos = tmp_path / "20bn-something-something-v2"
    assert [(r.video_id, r.label, r.path) for r in dm.list_records("train")] == [
        ("78687", 0, str(videos / "78687.webm")), ("42326", 1, str(videos / "42326.webm")),
        ("100904", 2, str(videos / "100904.webm"))]
    # the test labels were never released: `test` reads the validation list unless asked for the test list
    assert [(r.video_id, r.label) for r in dm.list_records("val")] == [("74225", 1)]
    assert dm.list_records("test") == dm.list_records("val") and dm.validates_on_test
    assert "never released" in dm.validation_source
    unlabelled = SSv2DataModule(str(tmp_path), test_list="test", num_workers=0)
    assert [(r.video_id, r.label) for r in unlabelled.list_records("test")] == [("1420", -1), ("7", -1)]
    assert not unlabelled.validates_on_test
    with pytest.raises(DatasetLayoutError, match="test_list must be 'validation' or 'test', got 'val'"):
        SSv2DataModule(str(tmp_path), test_list="val")


def test_label_files_in_the_root_and_a_videos_folder(tmp_path):
    dm = SSv2DataModule(str(write_root(tmp_path, labels_dir="", videos_dir="videos")), num_workers=0)
    assert [r.path for r in dm.list_records("val")] == [str(tmp_path / "videos" / "74225.webm")]


def test_layout_errors_name_the_file(tmp_path):
    (tmp_path / "20bn-something-something-v2").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"no something-something-v2-train.json in labels/ or in the root"):
        SSv2DataModule(str(tmp_path)).list_records("train")
    labels = tmp_path / "labels.json"
    labels.write_text('{"Moving something up": 0, "Moving something down": "2"}')
    with pytest.raises(DatasetLayoutError, match=r"labels.json: class indices must run 0..1, each once"):
        parse_labels(labels)
    labels.write_text('{"Moving something up": "first"}')
    with pytest.raises(DatasetLayoutError, match=r"labels.json: the index of 'Moving something up' must be a number"):
        parse_labels(labels)
    labels.write_text('["Moving something up"]')
    with pytest.raises(DatasetLayoutError, match=r"labels.json: expected a JSON object mapping each template"):
        parse_labels(labels)
    shutil.rmtree(tmp_path / "20bn-something-something-v2")
    write_root(tmp_path, videos_dir="elsewhere")
    with pytest.raises(DatasetLayoutError, match=r"expected a 20bn-something-something-v2/ \(or videos/\) folder"):
        SSv2DataModule(str(tmp_path)).list_records("train")


def test_a_template_not_in_labels_json_is_refused_in_one_line(tmp_path, capsys):
    entry = {"id": "5", "label": "putting pen on cup", "template": "Putting [something] on [something]",
             "placeholders": ["pen", "cup"]}
    root = write_root(tmp_path / "data", train=[TRAIN[0], entry])
    with pytest.raises(DatasetLayoutError, match=r"something-something-v2-train.json: entry 1 \(id 5\): template "
                                                 r"'Putting \[something\] on \[something\]' is not in labels.json"):
        SSv2DataModule(str(root)).list_records("train")
    result = run_lit_video("data", "check", "--format", "ssv2", "--root", root)
    assert_one_line_error(result, "something-something-v2-train.json: entry 1 (id 5)", "is not in labels.json")
    # SSv2 has no official splits: `data check --split` is refused in one line, not passed on to the DataModule
    assert main(["data", "check", "--format", "ssv2", "--root", str(root), "--split", "test"]) == 2
    assert capsys.readouterr().err == "lit-video: error: --split: ssv2 has no split to choose (it applies to " \
                                      "formats with official splits, such as ucf101 and kinetics)\n"

    no_template = write_root(tmp_path / "bare", validation=[{"id": "9", "label": "moving pen up"}])
    with pytest.raises(DatasetLayoutError, match=r'validation.json: entry 0 \(id 9\): no "template"'):
        SSv2DataModule(str(no_template)).list_records("val")


def test_ids_with_a_path_are_refused_and_missing_videos_skipped(tmp_path):
    outside = {"id": "../../secret", "template": "Moving [something] from left to right"}
    nested = {"id": "sub/42326", "template": "Moving [something] from left to right"}
    root = write_root(tmp_path / "data", train=[*TRAIN, outside, nested])
    videos = root / "20bn-something-something-v2"
    (videos / "sub").mkdir()
    for name in ("78687.webm", "42326.webm", "sub/42326.webm"):  # 100904 is listed, never downloaded
        write_webm(videos / name)
    write_webm(tmp_path / "secret.webm")
    dm = SSv2DataModule(str(root), num_workers=0)
    listing = dm.list_records("train")
    assert [r.video_id for r in listing] == ["78687", "42326", "100904"]
    assert [(e.entry, e.where.rsplit(": ", 1)[1]) for e in listing.refused] == [("../../secret", "entry 3"),
                                                                               ("sub/42326", "entry 4")]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        present = dm.records("train")
    assert [r.video_id for r in present] == ["78687", "42326"]
    messages = [str(w.message) for w in caught]
    assert any("2 listed entries lead outside the dataset and are skipped" in m for m in messages), messages
    assert any("1 of 3 listed videos are missing" in m for m in messages), messages


def test_the_synthetic_copy_is_the_released_layout_and_yields_webm_clips(ssv2_root):
    labels = json.loads((ssv2_root / "labels" / "labels.json").read_text())
    assert sorted(labels.values(), key=int) == [str(i) for i in range(4)]  # indices as strings
    train = json.loads((ssv2_root / "labels" / "something-something-v2-train.json").read_text())
    assert {"id", "label", "template", "placeholders"} == set(train[0]) and "[something]" in train[0]["template"]
    test = json.loads((ssv2_root / "labels" / "something-something-v2-test.json").read_text())
    assert all(set(entry) == {"id"} and entry["id"].isdigit() for entry in test)

    dm = SSv2DataModule(str(ssv2_root), clip_len=4, stride=2, resolution=32, num_clips=2, batch_size=3, num_workers=0)
    assert dm.classes == sorted(labels) and "Moving something from left to right" in dm.classes
    records = dm.records("train")
    assert len(records) == 24 and {r.label for r in records} == set(range(4))
    with av.open(records[0].path) as container:
        assert records[0].path.endswith(".webm") and container.streams.video[0].codec_context.name == "vp9"
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (3, 3, 4, 32, 32) and batch["video"].std() > 0.1
    assert set(batch["label"].tolist()) <= set(range(4))
    val = next(iter(dm.val_dataloader()))
    assert val["video"].shape == (3, 2, 3, 4, 32, 32)


def test_no_horizontal_flips_by_default(tmp_path):
    """A video bright on its left and dark on its right stays so in every training clip, unless flips are
    asked for (then about half the clips are mirrored)."""
    frames = np.zeros((6, 32, 48, 3), np.uint8)
    frames[:, :, :24] = 230
    root = write_root(tmp_path, train=TRAIN[1:2])
    write_webm(root / "20bn-something-something-v2" / "42326.webm", frames)

    def mirrored(dm) -> list[bool]:
        dataset = dm.make_dataset("train")
        torch.manual_seed(0)
        clips = [dataset[0]["video"] for _ in range(24)]  # (C,T,H,W)
        return [bool(clip[..., -4:].mean() > clip[..., :4].mean()) for clip in clips]

    options = dict(clip_len=2, resolution=32, num_workers=0)
    assert SSv2DataModule(str(root), **options).flip is False
    assert not any(mirrored(SSv2DataModule(str(root), **options)))
    assert 4 <= sum(mirrored(SSv2DataModule(str(root), flip=True, **options))) <= 20


# ----------------------------------------------------------------------------- learning the template classes

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments" / "synthetic"


@pytest.fixture(scope="module")
def template_dataset(tmp_path_factory) -> Path:
    """Four template classes (moving something from left to right / right to left / up / down), 40 videos
    each: 24 train, 8 validation, 8 test."""
    root = tmp_path_factory.mktemp("ssv2_motion")
    synthesize("ssv2", root, SynthSpec(num_classes=4, videos_per_class=40, num_frames=24, size=(64, 80), seed=1))
    return root


def _fit(recipe: str, root: Path, out: Path) -> float:
    cli = run_cli(["fit", "--config", str(EXPERIMENTS / recipe),
                   "--data.class_path", "lit_video.data.formats.ssv2.SSv2DataModule",
                   "--data.init_args.root", str(root), "--data.init_args.num_workers", "0",
                   "--trainer.max_epochs", "8", "--trainer.default_root_dir", str(out), "--trainer.logger", "false",
                   "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                   "--trainer.enable_checkpointing", "false", "--compute_profile.enabled", "false"])
    assert isinstance(cli.datamodule, SSv2DataModule) and not cli.datamodule.flip
    return float(cli.trainer.callback_metrics["val/acc_video_best"])


def test_a_temporal_model_learns_the_templates_and_a_frame_model_cannot(template_dataset, tmp_path, one_torch_thread):
    """The tiny R(2+1)D and late-fusion frame recipes, 8 epochs each on one thread: measured 0.875 and 0.281
    validation video accuracy (chance 0.25), about 25 s and 7 s."""
    temporal = _fit("r2plus1d_tiny.yaml", template_dataset, tmp_path / "r2plus1d")
    frames = _fit("frame_late_tiny.yaml", template_dataset, tmp_path / "frame_late")
    assert temporal - frames >= 0.4, f"R(2+1)D reached {temporal:.2f}, the frame baseline {frames:.2f}"
