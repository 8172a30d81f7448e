"""Bad input to `lit-video evaluate` and `lit-video profile`: one `lit-video: error:` line, exit 2, nothing
written over; and `evaluate captioning` on predictions that miss videos of the split warns with the count
(an error with --strict) rather than scoring the subset silently."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.data.masks import VOID, read_mask, write_mask

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "experiments" / "synthetic" / "r2plus1d_tiny.yaml"


# --------------------------------------------------------------------------- evaluate
@pytest.fixture
def davis_one_sequence(davis_root, tmp_path) -> tuple[Path, Path]:
    """A DAVIS root scoring one sequence of the shared synthetic set, and a results folder of its
    annotations (void as background)."""
    root = tmp_path / "DAVIS"
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "Annotations").symlink_to(davis_root / "Annotations")
    sequence = (davis_root / "ImageSets" / "2017" / "val.txt").read_text().split()[0]
    (root / "ImageSets" / "2017" / "one.txt").write_text(f"{sequence}\n")
    results = tmp_path / "results"
    for path in sorted((davis_root / "Annotations" / "480p" / sequence).glob("*.png")):
        mask = read_mask(path)
        write_mask(results / sequence / path.name, np.where(mask == VOID, 0, mask).astype(np.uint8))
    return root, results


def test_evaluate_vos_out_a_file_or_below_one_is_one_line_and_the_file_is_kept(davis_one_sequence, tmp_path):
    root, results = davis_one_sequence
    taken = tmp_path / "scores.csv"
    taken.write_text("keep me\n")
    for out, fragments in ((taken, ("--out", str(taken), "is a file")),
                           (taken / "sub", ("--out", str(taken / "sub"), f"inside {taken}"))):
        result = run_lit_video("evaluate", "vos", "--gt", root, "--pred", results, "--set", "one", "--out", out)
        assert_one_line_error(result, *fragments)
    assert taken.read_text() == "keep me\n"
    # the same command with a folder scores and writes
    result = run_lit_video("evaluate", "vos", "--gt", root, "--pred", results, "--set", "one", "--out",
                           tmp_path / "scores")
    assert result.returncode == 0, result.output
    assert (tmp_path / "scores" / "global_results-one.csv").is_file()


def test_evaluate_vos_image_set_not_utf8_names_file_and_line(davis_one_sequence):
    root, results = davis_one_sequence
    image_set = root / "ImageSets" / "2017" / "latin1.txt"
    image_set.write_bytes(b"\n".join([(root / "ImageSets" / "2017" / "one.txt").read_bytes().strip(), b"caf\xe9"]))
    result = run_lit_video("evaluate", "vos", "--gt", root, "--pred", results, "--set", "latin1")
    assert_one_line_error(result, f"{image_set}:2: not UTF-8")


def test_evaluate_vis_and_captioning_out_an_existing_file_is_one_line(ytvis_root, msrvtt_root, tmp_path):
    taken = tmp_path / "metrics.json"
    taken.write_text("{}\n")
    vis_results = tmp_path / "vis_results.json"
    vis_results.write_text("[]")
    result = run_lit_video("evaluate", "vis", "--gt", ytvis_root / "valid" / "instances_gt.json", "--pred",
                           vis_results, "--out", taken)
    assert_one_line_error(result, "--out", str(taken), "is a file")
    captions = tmp_path / "captions.json"
    captions.write_text(json.dumps([{"image_id": "video0", "caption": "a red square"}]))
    result = run_lit_video("evaluate", "captioning", "--gt", msrvtt_root / "train_val_videodatainfo.json", "--pred",
                           captions, "--no-meteor", "--out", taken)
    assert_one_line_error(result, "--out", str(taken), "is a file")
    assert taken.read_text() == "{}\n"


def test_evaluate_captioning_warns_about_videos_without_prediction_and_strict_fails(msrvtt_root, tmp_path):
    gt = msrvtt_root / "train_val_videodatainfo.json"
    data = json.loads(gt.read_text())
    split = sorted({video["split"] for video in data["videos"]})[-1]
    videos = [video["video_id"] for video in data["videos"] if video["split"] == split]
    first_caption = {}
    for sentence in data["sentences"]:
        first_caption.setdefault(sentence["video_id"], sentence["caption"])
    predicted = videos[2:]  # the first two videos of the split have no prediction
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image_id": video, "caption": first_caption[video]} for video in predicted]))

    result = run_lit_video("evaluate", "captioning", "--gt", gt, "--pred", results, "--split", split, "--no-meteor")
    assert result.returncode == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result.stderr
    assert f"no caption for 2 of the {len(videos)} videos of split '{split}'" in warnings[0]
    assert repr(videos[0]) in warnings[0]
    written = json.loads((tmp_path / "caption_metrics.json").read_text())
    assert written["num_videos"] == len(predicted)

    (tmp_path / "caption_metrics.json").unlink()
    result = run_lit_video("evaluate", "captioning", "--gt", gt, "--pred", results, "--split", split, "--no-meteor",
                           "--strict")
    assert_one_line_error(result, str(results), f"no caption for 2 of the {len(videos)} videos", repr(videos[0]))
    assert not (tmp_path / "caption_metrics.json").exists()

    # every video predicted: no warning, and --strict passes
    results.write_text(json.dumps([{"image_id": video, "caption": first_caption[video]} for video in videos]))
    result = run_lit_video("evaluate", "captioning", "--gt", gt, "--pred", results, "--split", split, "--no-meteor",
                           "--strict")
    assert result.returncode == 0 and "warning:" not in result.stderr, result.output


# --------------------------------------------------------------------------- profile
# a device that is not there: plain cuda on a machine without a GPU, one past the last GPU otherwise
MISSING_GPU = "cuda" if not torch.cuda.is_available() else f"cuda:{torch.cuda.device_count()}"

PROFILE_FLAGS = [
    (["--resolutions", "0"], ["--resolutions", "positive"]),
    (["--resolutions", "112,-4"], ["--resolutions", "-4"]),
    (["--clip-lens", "0"], ["--clip-lens", "positive"]),
    (["--device", "tpu9"], ["--device", "tpu9", "not a device"]),
    (["--device", MISSING_GPU], ["--device", MISSING_GPU]),
    (["--steps", "-1"], ["--steps", ">= 0", "-1"]),
    (["--num-classes", "0"], ["--num-classes", ">= 1"]),
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),
    (["--vocab-size", "2"], ["--vocab-size", "2"]),
]


@pytest.mark.parametrize("flags, fragments", PROFILE_FLAGS, ids=[" ".join(flags) for flags, _ in PROFILE_FLAGS])
def test_profile_bad_options_are_one_line(tmp_path, flags, fragments):
    out = tmp_path / "profile.csv"
    result = run_lit_video("profile", "--config", TINY_CONFIG, "--steps", "0", "--out", out, *flags)
    assert_one_line_error(result, *fragments)
    assert not out.exists()


def test_profile_out_a_folder_is_one_line_and_the_folder_is_untouched(tmp_path):
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "old.csv").write_text("kept\n")
    result = run_lit_video("profile", "--config", TINY_CONFIG, "--steps", "0", "--device", "cpu", "--out", folder)
    assert_one_line_error(result, "--out", str(folder), "is a folder")
    assert [p.name for p in folder.iterdir()] == ["old.csv"] and (folder / "old.csv").read_text() == "kept\n"


def test_profile_configs_that_are_not_plain_yaml_mappings_are_one_line(tmp_path):
    marker = tmp_path / "ran"
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text(f'model: !!python/object/apply:os.system ["touch {marker}"]\n')
    result = run_lit_video("profile", "--config", tagged, "--device", "cpu", "--out", tmp_path / "a.csv")
    assert_one_line_error(result, str(tagged), "python/object/apply:os.system")
    assert not marker.exists()
    listed = tmp_path / "listed.yaml"
    listed.write_text("- model\n- data\n")
    result = run_lit_video("profile", "--config", listed, "--device", "cpu", "--out", tmp_path / "b.csv")
    assert_one_line_error(result, str(listed), "mapping", "list")
    assert not (tmp_path / "a.csv").exists() and not (tmp_path / "b.csv").exists()
