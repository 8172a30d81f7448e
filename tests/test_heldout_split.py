"""Model selection on held-out training videos: `val_fraction` / `split_seed` / `val_list` of every
classification DataModule, `validation_source` / `validates_on_test`, the shipped UCF101 sweeps, and
the one-line errors of bad values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.cli import main
from lit_video.data.formats.kinetics import KineticsDataModule
from lit_video.data.formats.ucf101 import VIDEO_NAME, UCF101DataModule
from lit_video.errors import DatasetLayoutError, LitVideoError
from lit_video.sweep.spec import SweepSpec

REPO = Path(__file__).resolve().parents[1]
TINY_EXPERIMENT = REPO / "experiments" / "synthetic" / "r2plus1d_tiny.yaml"
UCF101_SWEEPS = ["ucf101_tpe", "clip_length_ablation", "resolution_ablation", "pareto_accuracy_vs_gflops"]


def ids(records) -> list[str]:
    return sorted(r.video_id for r in records)


def group(video_id: str) -> str:
    match = VIDEO_NAME.fullmatch(video_id)
    return f"{match['cls']}_g{int(match['group']):02d}"


def subsets(datamodule) -> tuple[list[str], list[str], list[str]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Kinetics copies miss a few listed clips on purpose
        return tuple(ids(datamodule.records(subset)) for subset in ("train", "val", "test"))


# --------------------------------------------------------------------------------------- the split


def test_ucf101_holds_out_groups_of_the_training_list_and_tests_on_the_test_list(ucf101_root):
    plain = UCF101DataModule(str(ucf101_root), num_workers=0)
    train_list, test_list = ids(plain.list_records("train")), ids(plain.list_records("test"))
    held = UCF101DataModule(str(ucf101_root), num_workers=0, val_fraction=0.25)
    train, val, test = subsets(held)
    assert val and train and not set(train) & set(val)
    assert sorted(train + val) == train_list
    assert test == test_list
    assert not {group(v) for v in train} & {group(v) for v in val}
    # drawn per class: every class validates, and none gives up its whole training list
    labels = {r.video_id: r.label for r in plain.list_records("train")}
    assert {labels[v] for v in val} == {labels[v] for v in train} == set(range(plain.num_classes))
    assert held.datasets == {}
    held.setup("fit")
    assert ids(held.datasets["val"].records) == val and set(held.datasets) == {"train", "val"}  # test unread


def test_ucf101_keeps_every_recording_group_whole(tmp_path):
    """A copy with three clips per group (the fixture's groups hold one): no group is split."""
    root = tmp_path / "ucf"
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 Jump\n2 Run\n")
    train, test = [], []
    for label, name in enumerate(("Jump", "Run"), start=1):
        (root / "UCF-101" / name).mkdir(parents=True)
        for g in range(1, 20):
            for c in range(1, 4):
                relative = f"{name}/v_{name}_g{g:02d}_c{c:02d}.avi"
                (root / "UCF-101" / relative).touch()  # the split reads names only, never frames
                (test.append(relative) if g <= 7 else train.append(f"{relative} {label}"))
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")

    train_ids, val_ids, _ = subsets(UCF101DataModule(str(root), num_workers=0, val_fraction=0.25))
    val_groups = {group(v) for v in val_ids}
    assert not {group(v) for v in train_ids} & val_groups
    assert len(val_ids) == 3 * len(val_groups)
    # 12 training groups a class, a quarter of them held out in each class
    assert sorted(g.split("_")[0] for g in val_groups) == ["Jump"] * 3 + ["Run"] * 3

    # a val_list names videos: each pulls its whole group, and nothing else
    val_list = tmp_path / "val.txt"
    val_list.write_text("v_Jump_g08_c02\n\nv_Run_g19_c01\n")
    dm = UCF101DataModule(str(root), num_workers=0, val_list=str(val_list))
    assert subsets(dm)[1] == [f"v_Jump_g08_c{c:02d}" for c in (1, 2, 3)] + [f"v_Run_g19_c{c:02d}" for c in (1, 2, 3)]
    assert str(val_list) in dm.validation_source and "trainlist01.txt" in dm.validation_source


def test_kinetics_holds_out_training_clips_and_tests_on_its_split(kinetics_root):
    plain = KineticsDataModule(str(kinetics_root), num_workers=0)
    listed = ids(plain.list_records("train"))
    train, val, test = subsets(KineticsDataModule(str(kinetics_root), num_workers=0, val_fraction=0.25))
    assert val and not set(train) & set(val)
    assert set(train) | set(val) <= set(listed) and not set(listed) & set(test)
    assert test == subsets(plain)[2] == subsets(plain)[1]  # test reads the val CSV, as before
    on_test_csv = KineticsDataModule(str(kinetics_root), split="test", num_workers=0, val_fraction=0.25)
    assert subsets(on_test_csv)[2] and set(subsets(on_test_csv)[2]) <= set(ids(on_test_csv.list_records("test")))
    assert not set(subsets(on_test_csv)[2]) & set(test)


def test_the_seed_picks_the_split(ucf101_root, kinetics_root):
    for cls, root in ((UCF101DataModule, ucf101_root), (KineticsDataModule, kinetics_root)):
        draws = [subsets(cls(str(root), num_workers=0, val_fraction=0.25, split_seed=seed))[1] for seed in (0, 0, 1)]
        assert draws[0] == draws[1] != draws[2]


def test_a_fresh_process_draws_the_same_split(ucf101_root, kinetics_root):
    script = textwrap.dedent("""
        import json, sys, warnings
        warnings.simplefilter("ignore")
        from lit_video.data.formats.kinetics import KineticsDataModule
        from lit_video.data.formats.ucf101 import UCF101DataModule
        out = {}
        for name, cls, root in (("ucf101", UCF101DataModule, sys.argv[1]), ("kinetics", KineticsDataModule, sys.argv[2])):
            out[name] = sorted(r.video_id for r in cls(root, num_workers=0, val_fraction=0.25, split_seed=7).records("val"))
        print(json.dumps(out))
    """)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # set and dict order must not matter
    result = subprocess.run([sys.executable, "-c", script, str(ucf101_root), str(kinetics_root)], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    there = json.loads(result.stdout.splitlines()[-1])
    assert there["ucf101"] == subsets(UCF101DataModule(str(ucf101_root), num_workers=0, val_fraction=0.25,
                                                       split_seed=7))[1]
    assert there["kinetics"] == subsets(KineticsDataModule(str(kinetics_root), num_workers=0, val_fraction=0.25,
                                                           split_seed=7))[1]


def test_val_fraction_zero_keeps_the_formats_own_lists(ucf101_root, kinetics_root):
    dm = UCF101DataModule(str(ucf101_root), num_workers=0)
    train, val, test = subsets(dm)
    assert train == ids(dm.list_records("train")) and val == test == ids(dm.list_records("test"))
    kinetics = KineticsDataModule(str(kinetics_root), num_workers=0, val_fraction=0)
    assert subsets(kinetics)[1] == subsets(kinetics)[2]


# --------------------------------------------------------------------------------- what validation is


def test_validation_source_and_validates_on_test_say_the_truth(ucf101_root, kinetics_root):
    ucf = UCF101DataModule(str(ucf101_root), num_workers=0)
    assert ucf.validates_on_test
    assert ucf.validation_source.startswith("testlist01.txt: UCF101's TEST list")
    held = UCF101DataModule(str(ucf101_root), split=2, num_workers=0, val_fraction=0.1, split_seed=3)
    assert not held.validates_on_test
    assert held.validation_source == ("held-out 10% of the recording groups of trainlist02.txt, per class "
                                      "(split_seed 3)")

    kinetics = KineticsDataModule(str(kinetics_root), num_workers=0)
    assert kinetics.validates_on_test and "validate.csv" in kinetics.validation_source
    assert "test" in kinetics.validation_source
    on_test_csv = KineticsDataModule(str(kinetics_root), split="test", num_workers=0)
    assert not on_test_csv.validates_on_test
    held = KineticsDataModule(str(kinetics_root), num_workers=0, val_fraction=0.25)
    assert not held.validates_on_test
    assert held.validation_source == "held-out 25% of the videos of train.csv, per class (split_seed 0)"


def test_data_check_counts_the_subsets_as_training_reads_them(ucf101_root, tmp_path, capsys):
    def rows(*extra: str) -> dict[str, int]:
        assert main(["data", "check", "--format", "ucf101", "--root", str(ucf101_root), *extra]) == 0
        out = capsys.readouterr().out
        return {m[1]: int(m[2]) for m in re.finditer(r"^(train|val|test)\s+(\d+)", out, re.M)}, out

    plain, out = rows()
    assert plain == {"train": 28, "val": 12, "test": 12} and "validation reads: testlist01.txt" in out
    held, out = rows("--val-fraction", "0.25", "--split-seed", "1")
    assert held == {"train": 20, "val": 8, "test": 12}
    assert "validation reads: held-out 25%" in out and "(split_seed 1)" in out
    # a format that validates on its own lists refuses the flags instead of ignoring them
    assert main(["data", "check", "--format", "davis", "--root", str(tmp_path), "--val-fraction", "0.1"]) == 2
    assert "davis validates on its own list" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- a real fit


RECORDER = '''
import json
from lightning.pytorch.callbacks import Callback


class RecordVideos(Callback):
    """Writes the ids of the videos each stage saw, and what the DataModule says validation is."""

    def __init__(self, path: str):
        self.path = path
        self.seen = {"train": set(), "val": set()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seen["train"].update(batch["video_id"])

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self.seen["val"].update(batch["video_id"])

    def on_fit_end(self, trainer, pl_module):
        data = trainer.datamodule
        with open(self.path, "w") as f:
            json.dump({"seen": {k: sorted(v) for k, v in self.seen.items()},
                       "source": data.validation_source, "on_test": data.validates_on_test}, f)
'''


def test_fit_validates_on_the_held_out_videos(ucf101_root, tmp_path):
    (tmp_path / "record_videos.py").write_text(RECORDER)
    seen = tmp_path / "seen.json"
    (tmp_path / "callbacks.yaml").write_text(
        f"trainer:\n  callbacks:\n    - class_path: record_videos.RecordVideos\n      init_args: {{path: {seen}}}\n")
    result = run_lit_video(
        "fit", "--config", TINY_EXPERIMENT, "--config", tmp_path / "callbacks.yaml",
        "--data.init_args.root", ucf101_root, "--data.init_args.num_workers", "0",
        "--data.init_args.val_fraction", "0.25", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", tmp_path,
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PYTHONHASHSEED": "777"})
    assert result.returncode == 0, result.output[-3000:]
    record = json.loads(seen.read_text())
    dm = UCF101DataModule(str(ucf101_root), num_workers=0, val_fraction=0.25)
    train_list, test = ids(dm.list_records("train")), ids(dm.list_records("test"))
    heldout = [v for v in train_list if v in dm.heldout]
    assert heldout and record["seen"]["val"] == heldout  # every held-out training video, and nothing else
    assert record["seen"]["train"] and not set(record["seen"]["train"]) & set(heldout + test)
    assert record["on_test"] is False and record["source"].startswith("held-out 25% of the recording groups")


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("args, fragments", [
    (["--data.init_args.val_fraction", "-0.1"], ["val_fraction", "[0, 1)", "-0.1"]),
    (["--data.init_args.val_fraction", "1.0"], ["val_fraction", "[0, 1)", "1.0"]),
    (["--data.init_args.val_fraction", "abc"], ["val_fraction", "abc"]),
    (["--data.init_args.val_list", "VAL_LIST"], ["val.txt:2", "v_Nobody_g09_c01", "trainlist01.txt"]),
], ids=["negative", "one", "not-a-number", "unknown-video"])
def test_bad_held_out_arguments_stop_with_one_line(ucf101_root, tmp_path, args, fragments):
    val_list = tmp_path / "val.txt"
    first = UCF101DataModule(str(ucf101_root), num_workers=0).list_records("train")[0].video_id
    val_list.write_text(f"{first}\nv_Nobody_g09_c01\n")
    result = run_lit_video(
        "fit", "--config", TINY_EXPERIMENT, "--data.init_args.root", ucf101_root,
        "--data.init_args.num_workers", "0", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
        "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
        "--trainer.default_root_dir", tmp_path, *[str(val_list) if a == "VAL_LIST" else a for a in args],
        cwd=tmp_path)
    assert_one_line_error(result, *fragments)
    assert not list(tmp_path.rglob("*.ckpt"))


def test_bad_held_out_arguments_are_refused_by_the_constructor(ucf101_root, tmp_path):
    for value in (-0.1, 1.0, "abc", float("nan"), True):
        with pytest.raises(LitVideoError, match="val_fraction"):
            UCF101DataModule(str(ucf101_root), num_workers=0, val_fraction=value)
    for value in (-1, 1.5, None):
        with pytest.raises(LitVideoError, match="split_seed"):
            UCF101DataModule(str(ucf101_root), num_workers=0, split_seed=value)
    with pytest.raises(LitVideoError, match="val_list"):
        UCF101DataModule(str(ucf101_root), num_workers=0, val_list=str(tmp_path / "missing.txt"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(DatasetLayoutError, match="no training video is held out"):
        UCF101DataModule(str(ucf101_root), num_workers=0, val_list=str(empty)).records("val")


# ------------------------------------------------------------------------------------------- sweeps


@pytest.mark.parametrize("name", UCF101_SWEEPS)
def test_the_shipped_ucf101_sweeps_select_on_held_out_groups(name):
    path = REPO / "sweeps" / f"{name}.yaml"
    spec = SweepSpec.load(path)
    spec.validate()
    assert spec.overrides["data.init_args.val_fraction"] == 0.1
    assert "held-out training groups" in path.read_text()


def test_msrvtt_holds_out_captioned_training_videos(msrvtt_root):
    from lit_video.data.formats.msrvtt import MSRVTTDataModule

    plain = MSRVTTDataModule(str(msrvtt_root), num_workers=0)
    held = MSRVTTDataModule(str(msrvtt_root), num_workers=0, val_fraction=0.25)
    train, val, test = subsets(held)
    assert val and not set(train) & set(val) and sorted(train + val) == subsets(plain)[0]
    assert test == subsets(plain)[2] and set(val) != set(subsets(plain)[1])
    assert set(held.references("val")) == set(val)  # captions to score against come along
    assert held.validation_source == ('held-out 25% of the videos of train_val_videodatainfo.json (split "train") '
                                      "(split_seed 0)")


@pytest.mark.parametrize("format_name, arguments, on_test, source", [
    ("youtube-vos", {}, False, "held-out 10% of the videos of train/meta.json (split_seed 0)"),
    ("youtube-vos", {"val_subset": "valid"}, True, "valid/meta.json (each object's first mask only"),
    ("youtube-vis", {"split_seed": 2}, False, "held-out 10% of the videos of train/instances.json (split_seed 2)"),
    ("youtube-vis", {"val_subset": "valid", "test_subset": "test"}, False, "valid/instances.json (no ground truth"),
    ("davis", {}, True, "ImageSets/2017/val.txt: the image set `test` reads too"),
    ("davis", {"test_subset": "test-dev"}, False, "ImageSets/2017/val.txt"),
    ("msrvtt", {}, False, 'train_val_videodatainfo.json (split "validate")'),
    ("msvd", {"val_end": 1250}, False, "youtube_mapping.txt vid1201-vid1250"),
], ids=["ytvos-held-out", "ytvos-valid", "ytvis-held-out", "ytvis-valid", "davis", "davis-test-dev", "msrvtt", "msvd"])
def test_every_format_says_where_validation_comes_from(tmp_path, format_name, arguments, on_test, source):
    from lit_video.data.base import datamodule_class

    datamodule = datamodule_class(format_name)(root=str(tmp_path), num_workers=0, **arguments)  # reads no file
    assert datamodule.validates_on_test is on_test
    assert datamodule.validation_source.startswith(source)
