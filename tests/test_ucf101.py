"""UCF101 split parsing from the official line formats, and the DataModule's batches."""

from __future__ import annotations

import re

import pytest
import torch

from lit_video.data.formats.ucf101 import UCF101DataModule, parse_class_index, parse_split_list
from lit_video.errors import DatasetLayoutError


def _write(path, text):
    path.write_bytes(text.encode())
    return path


def test_official_line_formats(tmp_path):
    class_ind = _write(tmp_path / "classInd.txt", "1 ApplyEyeMakeup\r\n2 ApplyLipstick\r\n3 HandstandPushups\r\n\r\n")
    classes = parse_class_index(class_ind)
    assert classes == ["ApplyEyeMakeup", "ApplyLipstick", "HandstandPushups"]
    train = _write(tmp_path / "trainlist01.txt",
                   "ApplyLipstick/v_ApplyLipstick_g08_c01.avi 2\r\nApplyEyeMakeup/v_ApplyEyeMakeup_g09_c02.avi 1\r\n")
    records = parse_split_list(train, classes, tmp_path / "UCF-101")
    assert [(r.label, r.video_id) for r in records] == [(1, "v_ApplyLipstick_g08_c01"), (0, "v_ApplyEyeMakeup_g09_c02")]
    assert records[0].path == str(tmp_path / "UCF-101" / "ApplyLipstick" / "v_ApplyLipstick_g08_c01.avi")
    # Test lists carry no label: it comes from the class folder (the real files spell one class
    # folder HandstandPushups but its videos v_HandStandPushups_*).
    test = _write(tmp_path / "testlist01.txt", "HandstandPushups/v_HandStandPushups_g01_c01.avi\r\nApplyLipstick/v_ApplyLipstick_g01_c01.avi")
    assert [r.label for r in parse_split_list(test, classes, tmp_path)] == [2, 1]


@pytest.mark.parametrize("content, message", [
    ("Apply/v_Apply_g01_c01.avi 7\r\n", r"trainlist01.txt:1: label '7' is not in 1..2"),
    ("Unknown/v_Unknown_g01_c01.avi\r\n", r"trainlist01.txt:1: class folder 'Unknown' is not in classInd.txt"),
    ("A/x.avi\r\nno-slash-here 1\r\n", r"trainlist01.txt:2: expected '<Class>/<video>.avi \[label\]'"),
])
def test_malformed_split_lines_are_named(tmp_path, content, message):
    path = _write(tmp_path / "trainlist01.txt", content)
    with pytest.raises(DatasetLayoutError, match=message):
        parse_split_list(path, ["A", "B"], tmp_path)


def test_malformed_class_index(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"classInd.txt:2: expected"):
        parse_class_index(_write(tmp_path / "classInd.txt", "1 A\nB 2\n"))
    with pytest.raises(DatasetLayoutError, match="without gaps"):
        parse_class_index(_write(tmp_path / "classInd.txt", "1 A\n3 B\n"))


def test_wrong_root_is_explained(tmp_path):
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        UCF101DataModule(str(tmp_path / "nowhere"))
    with pytest.raises(DatasetLayoutError, match=r"not a UCF101 root: expected ucfTrainTestlist/"):
        UCF101DataModule(str(tmp_path)).list_records("train")


def test_synthetic_layout_follows_official_splits(ucf101_root):
    files = sorted(p.relative_to(ucf101_root).as_posix() for p in ucf101_root.rglob("*.avi"))
    assert len(files) == 40
    assert all(re.fullmatch(r"UCF-101/(\w+)/v_\1_g\d\d_c\d\d\.avi", f) for f in files)
    raw = (ucf101_root / "ucfTrainTestlist" / "testlist01.txt").read_bytes()
    assert b"\r\n" in raw
    for split, held_out in ((1, range(1, 8)), (2, range(8, 15)), (3, range(15, 22))):
        dm = UCF101DataModule(str(ucf101_root), split=split)
        train, test = dm.list_records("train"), dm.list_records("test")
        assert len(train) + len(test) == 40 and train and test
        groups = {int(r.video_id.split("_g")[1][:2]) for r in test}
        assert groups <= set(held_out)
        assert not {r.video_id for r in train} & {r.video_id for r in test}
    assert dm.classes == ["MoveRight", "MoveLeft", "MoveUp", "MoveDown"] and dm.num_classes == 4


def test_train_batches_have_requested_shape(ucf101_root):
    dm = UCF101DataModule(str(ucf101_root), clip_len=6, stride=3, resolution=48, batch_size=4, num_workers=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].dtype == torch.float32 and batch["video"].shape == (4, 3, 6, 48, 48)
    assert batch["label"].shape == (4,) and batch["label"].dtype == torch.int64
    assert batch["frame_indices"].shape == (4, 6) and bool((batch["frame_indices"].diff(dim=1) == 3).all())
    assert len(batch["video_id"]) == 4


def test_eval_batches_hold_every_view(ucf101_root):
    dm = UCF101DataModule(str(ucf101_root), clip_len=4, stride=2, num_clips=3, num_crops=3, resolution=[40, 48],
                          batch_size=2, num_workers=0)
    batch = next(iter(dm.val_dataloader()))
    assert batch["video"].shape == (2, 9, 3, 4, 40, 48)  # (B, clips x crops, C, T, H, W)
    assert batch["frame_indices"].shape == (2, 3, 4)
    assert batch["frame_indices"][0, 0, 0] == 0 and batch["frame_indices"][0, -1, -1] == 23


def test_normalize_on_device_gives_the_same_batch(ucf101_root):
    args = dict(clip_len=4, stride=2, num_clips=2, resolution=32, batch_size=3, num_workers=0)
    reference = next(iter(UCF101DataModule(str(ucf101_root), **args).val_dataloader()))
    dm = UCF101DataModule(str(ucf101_root), normalize_on_device=True, **args)
    raw = next(iter(dm.val_dataloader()))
    assert raw["video"].dtype == torch.uint8  # a quarter of the bytes leave the workers
    batch = dm.on_after_batch_transfer(raw, 0)  # what the Trainer calls once the batch is on the device
    assert batch["video"].dtype == torch.float32
    assert torch.allclose(batch["video"], reference["video"], atol=1e-5)
