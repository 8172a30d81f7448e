"""HMDB51 split files in the released line format, the DataModule on a synthetic copy, and its one-line
errors."""

from __future__ import annotations

import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.data.base import datamodule_class
from lit_video.data.formats.hmdb51 import SPLITS_DIR, HMDB51DataModule, parse_split_file
from lit_video.data.records import refused_entries
from lit_video.errors import DatasetLayoutError, LitVideoError

# Names as the release spells them: `<movie>_<class>_<tags>_<clip>.avi`, punctuation included.
BRUSH_HAIR = ["April_09_brush_hair_u_nm_np1_ba_goo_0.avi", "April_09_brush_hair_u_nm_np1_ba_goo_1.avi",
              "Blonde_being_brushed_brush_hair_f_nm_np2_ri_med_0.avi", "Brushing_Hair_brush_hair_h_cm_np1_le_goo_0.avi"]
CARTWHEEL = ["(Rad)Schlag_die_Bank!_cartwheel_f_cm_np1_le_med_0.avi", "Acrobacias_de_un_fenomeno_cartwheel_f_cm_np1_ba_bad_8.avi"]


def write_split(folder: Path, class_name: str, split: int, lines: list[str], newline: str = "\n") -> Path:
    """`<class>_test_split<N>.txt` with `lines` as given (each keeps its trailing space, if any)."""
    path = folder / f"{class_name}_test_split{split}.txt"
    path.write_bytes("".join(line + newline for line in lines).encode())
    return path


def released_copy(root: Path, videos: str = "") -> Path:
    """A hand-written HMDB51 root: classes cartwheel and brush_hair (split files written cartwheel first), one
    listed video not on disk. `videos`: the folder of the class folders, "" for the root itself."""
    splits = root / SPLITS_DIR
    splits.mkdir(parents=True)
    for name, files in (("cartwheel", CARTWHEEL), ("brush_hair", BRUSH_HAIR)):
        (root / videos / name).mkdir(parents=True)
        for file_name in files[:-1] if name == "brush_hair" else files:  # the last brush_hair video is missing
            (root / videos / name / file_name).touch()  # listings read names only, never frames
    for split in (1, 2, 3):
        # the released form: `<name> <flag> ` (a trailing space); \r\n in some copies
        write_split(splits, "cartwheel", split, [f"{CARTWHEEL[0]} 1 ", f"{CARTWHEEL[1]} {1 + (split != 1)} "], "\r\n")
        flags = {1: "1120", 2: "2011", 3: "0211"}[split]
        write_split(splits, "brush_hair", split, [f"{n} {f} " for n, f in zip(BRUSH_HAIR, flags)] + [""])
    return root


def test_released_lines_flags_and_line_endings(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    lines = [f"{BRUSH_HAIR[0]} 1 ", f"{BRUSH_HAIR[1]} 2", "", f"{BRUSH_HAIR[2]} 0 ", f"  {BRUSH_HAIR[3]}\t1  "]
    for newline in ("\n", "\r\n"):
        path = write_split(splits, "brush_hair", 1, lines, newline)
        subsets = parse_split_file(path, "brush_hair", 4, tmp_path / "videos")
        assert [r.video_id for r in subsets["train"]] == [BRUSH_HAIR[0][:-4], BRUSH_HAIR[3][:-4]]
        assert [r.video_id for r in subsets["test"]] == [BRUSH_HAIR[1][:-4]]  # flag 0: in no subset
        assert {r.label for r in subsets["train"] + subsets["test"]} == {4}
        assert subsets["test"][0].path == str(tmp_path / "videos" / "brush_hair" / BRUSH_HAIR[1])


@pytest.mark.parametrize("videos", ["", "videos", "hmdb51_org"])
def test_labels_follow_sorted_classes_wherever_the_class_folders_are(tmp_path, videos):
    root = released_copy(tmp_path / "hmdb", videos)
    datamodule = HMDB51DataModule(str(root), num_workers=0)
    assert datamodule.classes == ["brush_hair", "cartwheel"] and datamodule.num_classes == 2
    train = datamodule.list_records("train")
    assert {(r.video_id.split("_")[0], r.label) for r in train} == {("April", 0), ("(Rad)Schlag", 1), ("Acrobacias", 1)}
    assert all(Path(r.path).parent.parent == root / videos for r in train)
    assert all(Path(r.path).is_file() for r in train)


def test_the_three_splits_read_their_own_flags_and_missing_videos_are_skipped(tmp_path):
    root = released_copy(tmp_path / "hmdb")
    listed = {split: HMDB51DataModule(str(root), split=split, num_workers=0) for split in (1, 2, 3)}
    names = {split: ({r.video_id for r in dm.list_records("train")}, {r.video_id for r in dm.list_records("test")})
             for split, dm in listed.items()}
    stems = [n[:-4] for n in BRUSH_HAIR]
    assert names[1] == ({stems[0], stems[1], CARTWHEEL[0][:-4], CARTWHEEL[1][:-4]}, {stems[2]})
    assert names[2] == ({stems[2], stems[3], CARTWHEEL[0][:-4]}, {stems[0], CARTWHEEL[1][:-4]})
    assert names[3] == ({stems[2], stems[3], CARTWHEEL[0][:-4]}, {stems[1], CARTWHEEL[1][:-4]})
    # split 2 lists the missing brush_hair video for training: skipped with the warning of every format
    with pytest.warns(UserWarning, match=r"hmdb51 .* train: 1 of 3 listed videos are missing and skipped \(first: "
                                         r".*Brushing_Hair_brush_hair_h_cm_np1_le_goo_0.avi\)"):
        assert len(listed[2].records("train")) == 2


@pytest.mark.parametrize("line, message", [
    (f"{BRUSH_HAIR[0]} ", r"brush_hair_test_split1.txt:2: expected '<video file name> <flag 0, 1 or 2>'"),
    (f"{BRUSH_HAIR[0]} 3 ", r"brush_hair_test_split1.txt:2: expected '<video file name> <flag 0, 1 or 2>', got '"),
    (f"{BRUSH_HAIR[0]} train", r"brush_hair_test_split1.txt:2: expected"),
    (f"brush_hair/{BRUSH_HAIR[0]} 1 ", r"brush_hair_test_split1.txt:2: 'brush_hair/April_09.*' is not a file name"),
    (".. 1 ", r"brush_hair_test_split1.txt:2: '\.\.' is not a file name"),
    (r"..\secret.avi 1", r"brush_hair_test_split1.txt:2: '\.\.\\\\secret.avi' is not a file name"),
])
def test_malformed_lines_are_named_with_their_file_and_line(tmp_path, line, message):
    path = write_split(tmp_path, "brush_hair", 1, [f"{BRUSH_HAIR[1]} 1 ", line], "\r\n")
    with pytest.raises(DatasetLayoutError, match=message):
        parse_split_file(path, "brush_hair", 0, tmp_path)


def test_a_video_linked_outside_the_dataset_is_refused(tmp_path):
    root = released_copy(tmp_path / "hmdb")
    (tmp_path / "outside.avi").touch()
    (root / "brush_hair" / BRUSH_HAIR[1]).unlink()
    (root / "brush_hair" / BRUSH_HAIR[1]).symlink_to(tmp_path / "outside.avi")
    datamodule = HMDB51DataModule(str(root), num_workers=0)
    train = datamodule.list_records("train")
    assert BRUSH_HAIR[1][:-4] not in {r.video_id for r in train}
    [refused] = refused_entries(train)
    assert refused.where == f"{root / SPLITS_DIR / 'brush_hair_test_split1.txt'}:2" and "is a link to" in refused.reason
    with pytest.warns(UserWarning, match="1 listed entry leads outside the dataset and is skipped"):
        datamodule.records("train")


def test_layout_errors_name_what_is_expected(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"not an HMDB51 root: expected testTrainMulti_7030_splits/"):
        HMDB51DataModule(str(tmp_path), num_workers=0).list_records("train")
    root = released_copy(tmp_path / "hmdb")
    with pytest.raises(LitVideoError, match=r"HMDB51 split must be 1, 2 or 3, got 4"):
        HMDB51DataModule(str(root), split=4)
    (root / SPLITS_DIR / "cartwheel_test_split3.txt").unlink()
    with pytest.raises(DatasetLayoutError, match=r"cartwheel_test_split3.txt: missing HMDB51 split file"):
        HMDB51DataModule(str(root), split=3, num_workers=0).list_records("test")
    for path in (root / SPLITS_DIR).iterdir():
        path.unlink()
    with pytest.raises(DatasetLayoutError, match=r"no HMDB51 split files \(<class>_test_split<1-3>.txt\)"):
        HMDB51DataModule(str(root), num_workers=0).list_records("train")


def flags_in_files(root: Path, split: int) -> dict[str, int]:
    """How many lines of the split's files carry each flag."""
    counts = {"0": 0, "1": 0, "2": 0}
    for path in (root / SPLITS_DIR).glob(f"*_test_split{split}.txt"):
        for line in path.read_text().splitlines():
            counts[line.split()[1]] += 1
    return counts


def movie(video_id: str) -> str:
    """`Synth_Movie_03_move_up_f_nm_np1_fr_med_1` -> `Synth_Movie_03_move_up`: the source movie, in its class."""
    return video_id.split("_f_nm_")[0]


def test_the_synthetic_copy_is_laid_out_and_flagged_as_released(hmdb51_root):
    files = sorted(p.relative_to(hmdb51_root).as_posix() for p in hmdb51_root.rglob("*.avi"))
    assert len(files) == 40
    assert all(re.fullmatch(r"([a-z]+(_[a-z]+)*)/Synth_Movie_\d\d_\1_f_nm_np1_fr_med_[01]\.avi", f) for f in files), files
    raw = (hmdb51_root / SPLITS_DIR / "move_right_test_split1.txt").read_bytes()
    assert raw.endswith(b" \r\n") and re.search(rb"\.avi 0 \r\n", raw)
    tests = []
    for split in (1, 2, 3):
        datamodule = HMDB51DataModule(str(hmdb51_root), split=split, num_workers=0)
        assert datamodule.classes == ["move_down", "move_left", "move_right", "move_up"]
        train, test = datamodule.records("train"), datamodule.records("test")
        counts = flags_in_files(hmdb51_root, split)
        assert (len(train), len(test)) == (counts["1"], counts["2"]) and counts["0"] > 0
        assert not {movie(r.video_id) for r in train} & {movie(r.video_id) for r in test}  # movies stay whole
        tests.append({r.video_id for r in test})
    assert tests[0] != tests[1] != tests[2] != tests[0]


def test_a_held_out_split_keeps_source_movies_whole(hmdb51_root):
    plain = HMDB51DataModule(str(hmdb51_root), num_workers=0)
    held = HMDB51DataModule(str(hmdb51_root), num_workers=0, val_fraction=0.3)
    train, val = held.listed_records("train"), held.listed_records("val")
    assert val and sorted(r.video_id for r in train + val) == sorted(r.video_id for r in plain.list_records("train"))
    assert all(held.heldout_key(r) == movie(r.video_id) for r in train + val)
    assert not {movie(r.video_id) for r in train} & {movie(r.video_id) for r in val}
    # 3 training movies of 2 clips per class: one movie of each class validates, both its clips
    assert sorted(Counter(movie(r.video_id) for r in val).values()) == [2] * 4
    assert {r.label for r in val} == set(range(4))
    assert held.listed_records("test") == plain.list_records("test")
    assert "source movies" in held.validation_source and "TEST videos" in plain.validation_source


def test_the_datamodule_returns_clips_with_their_labels(hmdb51_root):
    datamodule = datamodule_class("hmdb51")(root=str(hmdb51_root), clip_len=4, stride=2, resolution=32, batch_size=3,
                                            num_workers=0)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["video"].shape == (3, 3, 4, 32, 32) and batch["video"].dtype == torch.float32
    names = [datamodule.classes[label] for label in batch["label"].tolist()]
    assert all(f"_{name}_" in video_id for name, video_id in zip(names, batch["video_id"]))


def test_data_check_counts_and_a_bad_line_is_one_line(hmdb51_root, tmp_path):
    result = run_lit_video("data", "check", "--format", "hmdb51", "--root", hmdb51_root, "--split", "2")
    assert result.returncode == 0, result.output
    counts = flags_in_files(hmdb51_root, 2)
    assert re.search(rf"train\s+{counts['1']}\s+{counts['1']}\s+0\s+0", result.stdout), result.stdout
    assert re.search(rf"test\s+{counts['2']}\s+{counts['2']}\s+0\s+0", result.stdout), result.stdout

    root = tmp_path / "hmdb"
    shutil.copytree(hmdb51_root, root)
    path = root / SPLITS_DIR / "move_up_test_split1.txt"
    path.write_bytes(path.read_bytes() + b"Synth_Movie_09_move_up_f_nm_np1_fr_med_0.avi 7 \r\n")
    result = run_lit_video("data", "check", "--format", "hmdb51", "--root", root)
    assert_one_line_error(result, f"{path}:11: expected '<video file name> <flag 0, 1 or 2>'")
