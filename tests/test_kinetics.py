"""Kinetics CSV parsing (quoted labels, unlabelled tests, missing clips) and file layouts."""

from __future__ import annotations

import warnings

import pytest

from lit_video.data.formats.kinetics import KineticsDataModule, read_annotations
from lit_video.errors import DatasetLayoutError


def test_quoted_labels_and_both_folder_layouts(kinetics_root):
    dm = KineticsDataModule(str(kinetics_root), num_workers=0)
    assert "spinning, clockwise" in dm.classes and dm.classes == sorted(dm.classes)
    assert '"spinning, clockwise"' in (kinetics_root / "train.csv").read_text()
    train = dm.records("train")
    val = dm.records("val")
    assert train and val
    assert all("/train/" in r.path and r.path.count("/") > str(kinetics_root).count("/") + 2 for r in train)  # per class
    assert all(r.path.startswith(str(kinetics_root / "val") + "/") and r.path.count("/") == str(kinetics_root).count("/") + 2 for r in val)
    stem = train[0].video_id
    assert stem.count("_") >= 2 and stem[-13:-7].isdigit() and stem[-6:].isdigit()


def test_missing_clips_are_skipped_counted_and_reported_once(kinetics_root):
    dm = KineticsDataModule(str(kinetics_root), num_workers=0)
    listed = dm.list_records("train")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        present = dm.records("train")
    missing = len(listed) - len(present)
    assert missing > 0
    messages = [str(w.message) for w in caught if "missing" in str(w.message)]
    assert len(messages) == 1 and f"{missing} of {len(listed)} listed videos are missing" in messages[0]


def test_csv_variants(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "kinetics_train.csv").write_text(
        'label,youtube_id,time_start,time_end,split,is_cc\r\n"air drumming",-VtLx-mcPds,10,20,train,0\r\nabseiling,--07WQ2iBlw,1.0,11.0,train,0\r\n')
    # Kinetics-600/700 test lists carry no label column
    (tmp_path / "annotations" / "kinetics_test.csv").write_text("youtube_id,time_start,time_end,split\n--Zk7Ov4xE0,4,14,test\n")
    dm = KineticsDataModule(str(tmp_path), split="test", num_workers=0)
    assert dm.classes == ["abseiling", "air drumming"]
    train = dm.list_records("train")
    assert [(r.video_id, r.label) for r in train] == [("-VtLx-mcPds_000010_000020", 1), ("--07WQ2iBlw_000001_000011", 0)]
    test = dm.list_records("test")
    assert [(r.video_id, r.label) for r in test] == [("--Zk7Ov4xE0_000004_000014", -1)]
    with pytest.raises(DatasetLayoutError, match="no val annotation CSV"):
        dm.list_records("val")


def test_malformed_csv_is_named(tmp_path):
    (tmp_path / "train.csv").write_text("name,start\nx,1\n")
    with pytest.raises(DatasetLayoutError, match=r"train.csv: not a Kinetics annotation file \(missing column"):
        read_annotations(tmp_path / "train.csv")
    (tmp_path / "train.csv").write_text("label,youtube_id,time_start,time_end,split\nhop,abc,ten,20,train\n")
    with pytest.raises(DatasetLayoutError, match=r"train.csv:2: time_start/time_end must be numbers"):
        KineticsDataModule(str(tmp_path)).list_records("train")


def test_loader_reads_kinetics_mp4(kinetics_root):
    dm = KineticsDataModule(str(kinetics_root), clip_len=4, stride=2, resolution=32, batch_size=3, num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape == (3, 3, 4, 32, 32)
    assert set(batch["label"].tolist()) <= set(range(dm.num_classes))
