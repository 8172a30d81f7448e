"""Bad input to `lit-video data synth|check|iterate` and to the DataModules ends in one line, never in a
traceback or a silent success: list entries that lead outside the dataset, `data synth` into a folder
that holds something, out-of-range synthesis flags, annotation files that are not UTF-8, and clip and
loader arguments out of range."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from cli_errors import assert_one_line_error, run_lit_video

from lit_video.data.base import SUBSETS, datamodule_class
from lit_video.data.records import refused_entries
from lit_video.errors import LitVideoError

REPO = Path(__file__).resolve().parents[1]
TINY_SYNTH = ["--num-classes", "2", "--videos-per-class", "2", "--num-frames", "4", "--size", "32x32"]


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `folder` (links as their target text)."""
    files = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        if path.is_symlink():
            files[key] = "link:" + os.readlink(path)
        elif path.is_file():
            files[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            files[key] = "folder"
    return files


def append_line(path: Path, line: bytes) -> int:
    """Append `line` as a line of its own to `path`; returns its (1-based) line number."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        data += b"\n"
    number = data.count(b"\n") + 1
    path.write_bytes(data + line + b"\n")
    return number


# ----------------------------------------------------------------------- list entries outside the dataset


def test_ucf101_entries_outside_the_root_fail_check_and_are_skipped_in_training(ucf101_root, tmp_path):
    root = tmp_path / "ucf"
    shutil.copytree(ucf101_root, root)
    outside = tmp_path / "outside"
    outside.mkdir()
    video = next((root / "UCF-101" / "MoveRight").glob("*.avi"))
    shutil.copy(video, outside / "secret.avi")
    (root / "UCF-101" / "MoveRight" / "v_MoveRight_g99_c01.avi").symlink_to(outside / "secret.avi")
    trainlist = root / "ucfTrainTestlist" / "trainlist01.txt"
    climbing = append_line(trainlist, b"MoveRight/../../../outside/secret.avi 1")
    absolute = append_line(trainlist, f"{outside / 'secret.avi'} 1".encode())
    linked = append_line(trainlist, b"MoveRight/v_MoveRight_g99_c01.avi 1")

    result = run_lit_video("data", "check", "--format", "ucf101", "--root", root)
    assert_one_line_error(result, "3 listed entries lead outside the dataset", f"trainlist01.txt:{climbing}")
    for number, reason in ((climbing, "leads outside"), (absolute, "leads outside"), (linked, "is a link to")):
        assert any(f"trainlist01.txt:{number}:" in line and reason in line for line in result.stdout.splitlines()), \
            result.stdout

    # training: the three are skipped, one warning counts them, the rest trains
    result = run_lit_video("data", "iterate", "--format", "ucf101", "--root", root, "--clip-len", "2",
                           "--resolution", "32", "--batch-size", "8", "--num-workers", "0")
    assert result.returncode == 0, result.output
    warned = [line for line in result.stderr.splitlines() if "outside the dataset" in line]
    assert len(warned) == 1 and "3 listed entries lead outside the dataset and are skipped" in warned[0], result.stderr
    records = datamodule_class("ucf101")(root=str(root), num_workers=0).list_records("train")
    assert not any("secret" in r.path or "g99" in r.path for r in records)


def test_a_linked_video_folder_is_still_read(ucf101_root, tmp_path):
    """The folder the list is relative to may itself be a link (videos on another disk)."""
    root = tmp_path / "ucf"
    root.mkdir()
    shutil.copytree(ucf101_root / "ucfTrainTestlist", root / "ucfTrainTestlist")
    (root / "UCF-101").symlink_to(ucf101_root / "UCF-101")
    datamodule = datamodule_class("ucf101")(root=str(root), num_workers=0)
    listed = datamodule.list_records("train")
    assert len(listed) == len(datamodule_class("ucf101")(root=str(ucf101_root), num_workers=0).list_records("train"))
    assert not listed.refused


def _kinetics(root: Path) -> tuple[Path, bytes]:
    return root / "train.csv", b"moving right,../../../../outside/x,1,11,train,0"


def _davis(root: Path) -> tuple[Path, bytes]:
    return root / "ImageSets" / "2017" / "val.txt", b"../../../outside"


def _ytvos(root: Path) -> tuple[Path, bytes]:
    path = root / "train" / "meta.json"
    meta = json.loads(path.read_text())
    meta["videos"]["../../../outside"] = {"objects": {"1": {"category": "shape", "frames": ["00000"]}}}
    path.write_text(json.dumps(meta))
    return path, b""


def _ytvis(root: Path) -> tuple[Path, bytes]:
    path = root / "train" / "instances.json"
    data = json.loads(path.read_text())
    video = data["videos"][0]
    video["file_names"] = [f"../../../outside/{name.split('/')[-1]}" for name in video["file_names"]]
    path.write_text(json.dumps(data))
    return path, b""


def _msrvtt(root: Path) -> tuple[Path, bytes]:
    path = root / "train_val_videodatainfo.json"
    data = json.loads(path.read_text())
    data["videos"].append({**data["videos"][0], "video_id": "../../outside/video0", "id": 99999})
    path.write_text(json.dumps(data))
    return path, b""


def _msvd(root: Path) -> tuple[Path, bytes]:
    return root / "youtube_mapping.txt", b"../../outside/x_1_2 vid18"


def _hmdb51(root: Path) -> tuple[Path, bytes]:
    """HMDB51 lists bare file names (a `/` or `..` is a malformed line): a class folder's link leads outside."""
    (root.parent / "outside" / "secret.avi").touch()
    (root / "move_up" / "Linked_move_up_f_nm_np1_fr_med_0.avi").symlink_to(root.parent / "outside" / "secret.avi")
    return root / "testTrainMulti_7030_splits" / "move_up_test_split1.txt", b"Linked_move_up_f_nm_np1_fr_med_0.avi 1 "


# format, fixture, writes the bad entry (returns the file and a line to append), what the refusal names
OUTSIDE_CASES = {
    "kinetics": ("kinetics_root", _kinetics, "train.csv:"),
    "davis": ("davis_root", _davis, "val.txt:"),
    "youtube-vos": ("ytvos_root", _ytvos, 'meta.json: videos["../../../outside"]'),
    "youtube-vis": ("ytvis_root", _ytvis, 'instances.json: videos[0]["file_names"]'),
    "msrvtt": ("msrvtt_root", _msrvtt, 'train_val_videodatainfo.json: videos['),
    "msvd": ("msvd_root", _msvd, "youtube_mapping.txt:"),
    "hmdb51": ("hmdb51_root", _hmdb51, "move_up_test_split1.txt:"),
}
MSVD_BOUNDS = dict(train_end=18, val_end=24, test_end=30)  # what the msvd_root fixture holds


def _outside_copy(format_name: str, request, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the format's dataset with one listed id leading outside it -> (root, what names the entry)."""
    fixture, corrupt, where = OUTSIDE_CASES[format_name]
    root = tmp_path / "data"
    shutil.copytree(request.getfixturevalue(fixture), root)
    (tmp_path / "outside").mkdir()
    path, line = corrupt(root)
    return root, where + (str(append_line(path, line)) if line else "")


def test_data_check_fails_on_an_id_that_leads_outside(request, tmp_path):
    root, where = _outside_copy("youtube-vos", request, tmp_path)
    result = run_lit_video("data", "check", "--format", "youtube-vos", "--root", root)
    assert_one_line_error(result, "1 listed entry leads outside the dataset", where)
    assert "entries leading outside the dataset, not read (1)" in result.stdout


@pytest.mark.parametrize("format_name", sorted(OUTSIDE_CASES))
def test_every_format_refuses_listed_ids_that_lead_outside(format_name, request, tmp_path):
    root, where = _outside_copy(format_name, request, tmp_path)
    options = MSVD_BOUNDS if format_name == "msvd" else {}
    datamodule = datamodule_class(format_name)(root=str(root), num_workers=0, **options)
    refused = {str(entry) for subset in SUBSETS for entry in refused_entries(datamodule.list_records(subset))}
    assert len(refused) == 1 and where in next(iter(refused)), refused
    with pytest.warns(UserWarning, match="1 listed entry leads outside the dataset and is skipped"):
        for subset in SUBSETS:
            assert not any("outside" in r.path for r in datamodule.records(subset))


def test_youtube_vos_frame_names_with_folders_are_refused(ytvos_root, tmp_path):
    """meta.json frame names become mask paths and prediction file names."""
    root = tmp_path / "data"
    shutil.copytree(ytvos_root, root)
    meta = json.loads((root / "train" / "meta.json").read_text())
    vid = sorted(meta["videos"])[0]
    next(iter(meta["videos"][vid]["objects"].values()))["frames"].append("../../../../escape")
    (root / "train" / "meta.json").write_text(json.dumps(meta))
    datamodule = datamodule_class("youtube-vos")(root=str(root), num_workers=0)
    refused = [entry for subset in SUBSETS for entry in refused_entries(datamodule.list_records(subset))]
    assert [(e.where.endswith(f'meta.json: videos["{vid}"]'), e.entry) for e in refused] == \
        [(True, "../../../../escape")]
    assert "is not a frame name" in refused[0].reason


# ----------------------------------------------------------------------- annotation files that are not UTF-8


NON_UTF8_FILES = {
    "ucf101": ("ucf101_root", "ucfTrainTestlist/trainlist01.txt"),
    "hmdb51": ("hmdb51_root", "testTrainMulti_7030_splits/move_down_test_split1.txt"),
    "kinetics": ("kinetics_root", "train.csv"),
    "ssv2": ("ssv2_root", "labels/something-something-v2-train.json"),
    "davis": ("davis_root", "ImageSets/2017/train.txt"),
    "youtube-vos": ("ytvos_root", "train/meta.json"),
    "youtube-vis": ("ytvis_root", "train/instances.json"),
    "msrvtt": ("msrvtt_root", "train_val_videodatainfo.json"),
    "msvd": ("msvd_root", "MSR Video Description Corpus.csv"),
}


def _latin1_copy(format_name: str, request, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the format's dataset with a Latin-1 line in its main list file -> (root, expected message)."""
    fixture, relative = NON_UTF8_FILES[format_name]
    root = tmp_path / "data"
    shutil.copytree(request.getfixturevalue(fixture), root)
    number = append_line(root / relative, b"caf\xe9 au lait")
    return root, f"{root / relative}:{number}: not UTF-8 text (byte 0xe9 at column 4)"


@pytest.mark.parametrize("format_name", ["msrvtt", "ucf101"])
def test_data_check_names_the_line_that_is_not_utf8(format_name, request, tmp_path):
    root, message = _latin1_copy(format_name, request, tmp_path)
    result = run_lit_video("data", "check", "--format", format_name, "--root", root)
    assert_one_line_error(result, message)


@pytest.mark.parametrize("format_name", sorted(NON_UTF8_FILES))
def test_every_datamodule_names_the_line_that_is_not_utf8(format_name, request, tmp_path):
    root, message = _latin1_copy(format_name, request, tmp_path)
    options = MSVD_BOUNDS if format_name == "msvd" else {}
    datamodule = datamodule_class(format_name)(root=str(root), num_workers=0, **options)
    with pytest.raises(LitVideoError, match=re.escape(message)):
        for subset in SUBSETS:
            datamodule.records(subset)


def test_every_text_file_a_datamodule_reads_is_checked(ucf101_root, ytvos_root, msvd_root, tmp_path):
    """The other list files (class index, held-out list, caption mapping, tokenizer vocabulary)."""
    ucf = tmp_path / "ucf"
    shutil.copytree(ucf101_root, ucf)
    number = append_line(ucf / "ucfTrainTestlist" / "classInd.txt", b"5 Caf\xe9")
    with pytest.raises(LitVideoError, match=rf"classInd.txt:{number}: not UTF-8 text"):
        datamodule_class("ucf101")(root=str(ucf), num_workers=0).list_records("train")

    val_list = tmp_path / "val_list.txt"
    val_list.write_bytes(b"\xff\xfeu\x00")  # UTF-16
    with pytest.raises(LitVideoError, match=r"val_list.txt:1: not UTF-8 text \(byte 0xff at column 1\)"):
        datamodule_class("youtube-vos")(root=str(ytvos_root), val_list=str(val_list), num_workers=0).records("val")

    msvd = tmp_path / "msvd"
    shutil.copytree(msvd_root, msvd)
    number = append_line(msvd / "youtube_mapping.txt", b"caf\xe9_1_2 vid31")
    bounds = dict(**MSVD_BOUNDS, num_workers=0)
    with pytest.raises(LitVideoError, match=rf"youtube_mapping.txt:{number}: not UTF-8 text"):
        datamodule_class("msvd")(root=str(msvd), **bounds).records("train")

    vocabulary = tmp_path / "vocab.txt"
    vocabulary.write_bytes(b"a\nshape\nmov\xe9s\n")
    with pytest.raises(LitVideoError, match=r"vocab.txt:3: not UTF-8 text"):
        datamodule_class("msvd")(root=str(msvd_root), tokenizer=str(vocabulary), **bounds).tokenizer  # noqa: B018


# ----------------------------------------------------------------------- data synth into a folder that holds files


def test_synth_refuses_a_folder_that_holds_files_and_leaves_it_byte_identical(ucf101_root, tmp_path):
    root = tmp_path / "ucf"
    shutil.copytree(ucf101_root, root)
    before = snapshot(root)
    result = run_lit_video("data", "synth", "--format", "ucf101", "--out", root, *TINY_SYNTH)
    assert_one_line_error(result, f"--out {root} is not empty", "--overwrite")
    # --skip-existing keeps only a complete dataset of the format asked for: not a UCF101 copy as Kinetics
    result = run_lit_video("data", "synth", "--format", "kinetics", "--out", root, "--skip-existing", *TINY_SYNTH)
    assert_one_line_error(result, "holds files but no complete kinetics dataset")
    assert snapshot(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ucf"]  # nothing left beside it


def test_skip_existing_keeps_a_complete_dataset_and_overwrite_replaces_the_folder(tmp_path):
    out = tmp_path / "synth"
    result = run_lit_video("data", "synth", "--format", "ucf101", "--out", out, *TINY_SYNTH)
    assert result.returncode == 0, result.output
    written = snapshot(out)
    result = run_lit_video("data", "synth", "--format", "ucf101", "--out", out, "--skip-existing", *TINY_SYNTH)
    assert result.returncode == 0 and "skipping synthesis" in result.stdout, result.output
    assert snapshot(out) == written

    # --overwrite: the old dataset, a stray file and a link go; what the link points to stays
    (out / "stray.txt").write_text("old")
    keep = tmp_path / "keep.txt"
    keep.write_text("not in the dataset")
    (out / "link").symlink_to(keep)
    (out / "linked_folder").symlink_to(tmp_path, target_is_directory=True)
    # a size the format refuses is refused before the old dataset is touched
    result = run_lit_video("data", "synth", "--format", "davis", "--out", out, "--overwrite", *TINY_SYNTH[:-2],
                           "--num-frames", "1")
    assert_one_line_error(result, "num_frames")
    assert (out / "stray.txt").exists() and (out / "UCF-101").is_dir()
    result = run_lit_video("data", "synth", "--format", "kinetics", "--out", out, "--overwrite", *TINY_SYNTH)
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [".lit-video-synth.json", "test.csv", "train", "train.csv",
                                                     "validate.csv"]
    assert keep.read_text() == "not in the dataset"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt", "synth"]


def test_overwrite_refuses_links_and_the_current_folder(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    (tmp_path / "link").symlink_to(folder, target_is_directory=True)
    result = run_lit_video("data", "synth", "--format", "ucf101", "--out", tmp_path / "link", "--overwrite",
                           *TINY_SYNTH)
    assert_one_line_error(result, "is a link")
    result = run_lit_video("data", "synth", "--format", "ucf101", "--out", ".", "--overwrite", *TINY_SYNTH, cwd=folder)
    assert_one_line_error(result, "--overwrite refuses to empty .")
    assert sorted(p.name for p in folder.iterdir()) == ["precious.txt"]


# ----------------------------------------------------------------------- data synth flags out of range


@pytest.mark.parametrize("flags, fragment", [
    (["--size", "0x0"], "--size must be HEIGHTxWIDTH of even numbers >= 16, got 0x0"),
    (["--num-frames", "0"], "--num-frames must be an integer >= 1, got 0"),
    (["--videos-per-class", "-1"], "--videos-per-class must be an integer >= 1, got -1"),
    (["--fps", "0"], "--fps must be a positive number, got 0.0"),
    (["--out-is-a-file"], "is a file, not a folder"),
])
def test_synth_flags_out_of_range_are_one_line(flags, fragment, tmp_path):
    out = tmp_path / "out"
    if flags == ["--out-is-a-file"]:
        out.write_text("a file")
        flags = []
    result = run_lit_video("data", "synth", "--format", "ucf101", "--out", out, *flags)
    assert_one_line_error(result, fragment)
    assert not out.is_dir()


# ----------------------------------------------------------------------- DataModule arguments


def test_iterate_with_batch_size_zero_is_one_line(ucf101_root):
    result = run_lit_video("data", "iterate", "--format", "ucf101", "--root", ucf101_root, "--batch-size", "0")
    assert_one_line_error(result, "batch_size must be an integer >= 1, got 0")


def test_fit_with_batch_size_zero_is_one_line(ucf101_root):
    result = run_lit_video("fit", "--config", REPO / "experiments" / "synthetic" / "r2plus1d_tiny.yaml",
                           "--data.init_args.root", ucf101_root, "--data.init_args.batch_size", "0", cwd=REPO)
    assert_one_line_error(result, "batch_size must be an integer >= 1, got 0")


@pytest.mark.parametrize("format_name, fixture, arguments, fragment", [
    ("ucf101", "ucf101_root", dict(resolution=0), "resolution must be a positive integer"),
    ("ucf101", "ucf101_root", dict(num_workers=-1), "num_workers must be an integer >= 0, got -1"),
    ("ucf101", "ucf101_root", dict(clip_len=0), "clip_len must be an integer >= 1, got 0"),
    ("ucf101", "ucf101_root", dict(stride=-2), "stride must be an integer >= 1, got -2"),
    ("davis", "davis_root", dict(batch_size=0), "batch_size must be an integer >= 1"),
    ("youtube-vis", "ytvis_root", dict(resolution=[0, 64]), "resolution must be a positive integer"),
    ("msrvtt", "msrvtt_root", dict(clip_len=-1), "clip_len must be an integer >= 1"),
    ("kinetics", "kinetics_root", dict(num_crops=2), "num_crops must be 1 or 3"),
    ("ucf101", "ucf101_root", dict(train_short_side_range=[200, 100]), "train_short_side_range must be"),
    ("ucf101", "ucf101_root", dict(target_fps=0), "target_fps must be a positive number"),
    ("ucf101", "ucf101_root", dict(storage="disk"), "storage must be one of video, frames"),
    ("davis", "davis_root", dict(storage="frames"), "storage 'frames': the davis DataModule reads frame folders"),
])
def test_every_datamodule_checks_its_arguments(format_name, fixture, arguments, fragment, request):
    with pytest.raises(LitVideoError, match=fragment):
        datamodule_class(format_name)(root=str(request.getfixturevalue(fixture)), **arguments)
