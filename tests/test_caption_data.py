"""Captioning data: MSR-VTT and MSVD layouts, caption batches, references, bad annotations, corrupt
videos, tokenizers through the DataModule, and `lit-video data synth|check --format msrvtt`."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CAPTION_SPEC_FIELDS

from lit_video.cli import main
from lit_video.data import keys
from lit_video.data.formats.msrvtt import MSRVTTDataModule
from lit_video.data.formats.msvd import MSVD_CSV, MSVDDataModule
from lit_video.data.synthetic.captions import CaptionSynthSpec
from lit_video.data.tokenizer import normalize_caption
from lit_video.errors import DatasetLayoutError

SPEC = CaptionSynthSpec(**CAPTION_SPEC_FIELDS)  # what the msrvtt_root / msvd_root fixtures hold
MSVD_BOUNDS = dict(train_end=18, val_end=24, test_end=30)
SMALL = dict(clip_len=4, resolution=32, num_workers=0, batch_size=4)


def _caught(fn):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn()
    return result, [str(w.message) for w in caught]


def test_msrvtt_layout_is_parsed_exactly(msrvtt_root):
    train_val = json.loads((msrvtt_root / "train_val_videodatainfo.json").read_text())
    assert {v["split"] for v in train_val["videos"]} == {"train", "validate"}
    assert set(train_val["videos"][0]) == {"category", "url", "video_id", "start time", "end time", "split", "id"}
    dm = MSRVTTDataModule(str(msrvtt_root), **SMALL)
    ids = {subset: [r.video_id for r in dm.records(subset)] for subset in ("train", "val", "test")}
    assert ids == {"train": [f"video{i}" for i in range(18)], "val": [f"video{i}" for i in range(18, 24)],
                   "test": [f"video{i}" for i in range(24, 30)]}
    for record in dm.records("val"):
        index = int(record.video_id[5:])
        assert record.captions == tuple(SPEC.captions(index)) and len(record.captions) == 10
        assert record.path == str(msrvtt_root / "videos" / f"{record.video_id}.mp4") and record.label == -1
    assert dm.references("test") == {f"video{i}": SPEC.captions(i) for i in range(24, 30)}
    assert dm.classes == [] and dm.annotation_problems("train") == {
        "unknown_video_id": 0, "empty_caption": 0, "no_caption": 0, "missing_video": 0}


def test_synthetic_captions_state_every_attribute():
    for index in range(12):
        video = SPEC.video(index)
        for caption in SPEC.captions(index):
            words = caption.split()
            assert video.colour in words and video.shape in words
            assert any(w in (video.motion, video.motion + "ward") for w in words)  # "down", "downward"
            assert any(w in words for w in {"small": ("small", "little", "tiny"),
                                            "large": ("large", "big", "huge")}[video.size])
    assert len({SPEC.video(i) for i in range(30)}) > 15  # attributes vary between videos
    assert CaptionSynthSpec(seed=0).captions(3) == SPEC.captions(3)  # deterministic from (seed, index)


def _copy_videos(source: Path, target: Path, split_of: dict[str, str]):
    for video in sorted((source / "videos").iterdir()):
        folder = target / split_of[video.stem]
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(video, folder / video.name)


def test_msrvtt_alternative_folder_layouts(msrvtt_root, tmp_path):
    splits = {f"video{i}": SPEC.split(i) for i in range(30)}
    # the release: TrainValVideo/ + TestVideo/, annotations in a subfolder
    release = tmp_path / "release"
    _copy_videos(msrvtt_root, release, {v: "TestVideo" if s == "test" else "TrainValVideo" for v, s in splits.items()})
    (release / "annotations").mkdir()
    for name in ("train_val_videodatainfo.json", "test_videodatainfo.json"):
        shutil.copy(msrvtt_root / name, release / "annotations" / name)
    dm = MSRVTTDataModule(str(release), **SMALL)
    assert [r.path for r in dm.records("val")] == [str(release / "TrainValVideo" / f"video{i}.mp4") for i in range(18, 24)]
    assert [r.path for r in dm.records("test")] == [str(release / "TestVideo" / f"video{i}.mp4") for i in range(24, 30)]
    # videos/all/
    repack = tmp_path / "repack"
    _copy_videos(msrvtt_root, repack, {v: "videos/all" for v in splits})
    for name in ("train_val_videodatainfo.json", "test_videodatainfo.json"):
        shutil.copy(msrvtt_root / name, repack / name)
    dm = MSRVTTDataModule(str(repack), **SMALL)
    assert len(dm.records("train")) == 18 and all("/videos/all/" in r.path for r in dm.records("train"))
    with pytest.raises(DatasetLayoutError, match="is not an MSR-VTT root: no train_val_videodatainfo.json"):
        MSRVTTDataModule(str(tmp_path / "release" / "TestVideo"), **SMALL).records("train")


def test_training_batch_has_one_tokenized_caption_per_clip(msrvtt_root):
    dm = MSRVTTDataModule(str(msrvtt_root), max_caption_len=12, **SMALL)
    tokenizer = dm.tokenizer
    assert dm.vocab_size == tokenizer.vocab_size > 20 and dm.tokenizer_config["type"] == "word"
    batch = next(iter(dm.train_dataloader()))
    assert batch[keys.VIDEO].shape == (4, 3, 4, 32, 32) and batch[keys.VIDEO].dtype == torch.float32
    tokens = batch[keys.CAPTION_TOKENS]
    assert tokens.shape == (4, 12) and tokens.dtype == torch.int64
    captions_of = {r.video_id: r.captions for r in dm.records("train")}
    for row, caption, video_id in zip(tokens.tolist(), batch[keys.CAPTION], batch[keys.VIDEO_ID], strict=True):
        assert caption in captions_of[video_id]
        words = normalize_caption(caption)[:10]
        assert row[0] == tokenizer.bos_id and row[len(words) + 1] == tokenizer.eos_id
        assert row[len(words) + 2:] == [tokenizer.pad_id] * (12 - len(words) - 2)
        assert tokenizer.decode(row) == " ".join(words)


def test_caption_drawn_at_random_follows_torch_seed(msrvtt_root):
    dm = MSRVTTDataModule(str(msrvtt_root), **SMALL)
    dataset = dm.make_dataset("train")

    def draws(seed: int) -> list[str]:
        torch.manual_seed(seed)
        return [dataset[0][keys.CAPTION] for _ in range(8)]

    first = draws(0)
    assert len(set(first)) > 1  # a new caption each epoch, not always the first one
    assert draws(0) == first and draws(1) != first
    assert set(first) <= set(dataset.records[0].captions)


def test_eval_batch_carries_every_reference_as_lists(msrvtt_root):
    dm = MSRVTTDataModule(str(msrvtt_root), num_clips=2, **SMALL)
    batch = next(iter(dm.val_dataloader()))
    assert batch[keys.VIDEO].shape == (4, 2, 3, 4, 32, 32)
    assert keys.CAPTION_TOKENS not in batch and keys.CAPTION not in batch
    references = batch[keys.REFERENCES]
    assert isinstance(references, list) and len(references) == 4
    assert all(isinstance(r, list) and len(r) == 10 and all(isinstance(c, str) for c in r) for r in references)
    expected = dm.references("val")
    assert [expected[v] for v in batch[keys.VIDEO_ID]] == references


def test_uniform_frame_sampling_spans_the_whole_video(msrvtt_root):
    dm = MSRVTTDataModule(str(msrvtt_root), **SMALL)  # clip_len 4 over 16 frames: segments of 4
    assert dm.frame_sampling == "uniform" and dm.flip is False
    evaluation = dm.make_dataset("val")[0][keys.FRAME_INDICES]
    assert evaluation.tolist() == [[2, 6, 10, 14]]  # the centre of each segment
    torch.manual_seed(0)
    train = dm.make_dataset("train")
    for _ in range(5):
        indices = train[1][keys.FRAME_INDICES].numpy()
        assert (indices // 4 == np.arange(4)).all()  # one frame from each quarter


def _bad_msrvtt(msrvtt_root: Path, target: Path) -> Path:
    """A copy with every skippable problem: 2 sentences naming no listed video, 3 empty captions (2 in
    train, 1 in val), train video3 and test video25 without any caption, train video5's file missing."""
    shutil.copytree(msrvtt_root / "videos", target / "videos")
    (target / "videos" / "video5.mp4").unlink()
    train_val = json.loads((msrvtt_root / "train_val_videodatainfo.json").read_text())
    sentences = [s for s in train_val["sentences"] if s["video_id"] != "video3"]
    sentences += [{"caption": "a ghost video", "video_id": "video999", "sen_id": 900},
                  {"caption": "another", "video_id": "video1000", "sen_id": 901},
                  {"caption": "   ", "video_id": "video1", "sen_id": 902}, {"caption": "", "video_id": "video2", "sen_id": 903},
                  {"caption": "", "video_id": "video20", "sen_id": 904}]
    train_val["sentences"] = sentences
    (target / "train_val_videodatainfo.json").write_text(json.dumps(train_val))
    test = json.loads((msrvtt_root / "test_videodatainfo.json").read_text())
    test["sentences"] = [s for s in test["sentences"] if s["video_id"] != "video25"]
    (target / "test_videodatainfo.json").write_text(json.dumps(test))
    return target


def test_bad_annotations_are_skipped_counted_and_warned_once(msrvtt_root, tmp_path):
    root = _bad_msrvtt(msrvtt_root, tmp_path)
    dm = MSRVTTDataModule(str(root), **SMALL)
    train, messages = _caught(lambda: dm.records("train"))
    assert [r.video_id for r in train] == [f"video{i}" for i in range(18) if i not in (3, 5)]
    assert len(messages) == 4 and all("\n" not in m for m in messages)
    source = str(root / "train_val_videodatainfo.json")
    assert f"{source}: 2 caption(s) name a video id that the annotations do not list; skipped (first: " \
           "video999: 'a ghost video')" in messages
    assert f"{source}: 2 empty caption(s); skipped (first: video1: '   ')" in messages
    assert f"{source}: 1 video(s) without any caption; dropped from training (first: video3)" in messages
    assert any("1 of 17 listed videos are missing and skipped" in m and "video5.mp4" in m for m in messages)
    assert dm.annotation_problems("train") == {"unknown_video_id": 2, "empty_caption": 2, "no_caption": 1,
                                               "missing_video": 1}
    # val reads the same file: its unknown ids are counted but not warned about again
    val, messages = _caught(lambda: dm.records("val"))
    assert len(val) == 6 and messages == [f"{source}: 1 empty caption(s); skipped (first: video20: '')"]
    assert dm.annotation_problems("val") == {"unknown_video_id": 2, "empty_caption": 1, "no_caption": 0,
                                             "missing_video": 0}
    # a test video without captions is kept (predictions) but has no references
    test, messages = _caught(lambda: dm.records("test"))
    assert "video25" in [r.video_id for r in test] and "video25" not in dm.references("test")
    assert any("1 video(s) without any caption; kept in test without references (first: video25)" in m for m in messages)
    batch = next(iter(dm.test_dataloader()))
    assert batch[keys.REFERENCES][1] == []  # video25: nothing crashes on it
    assert len(dm.references("val")["video20"]) == 10


def test_malformed_msrvtt_json_is_one_line_naming_the_file(msrvtt_root, tmp_path):
    shutil.copy(msrvtt_root / "test_videodatainfo.json", tmp_path / "test_videodatainfo.json")
    path = tmp_path / "train_val_videodatainfo.json"
    path.write_text('{"videos": [')
    with pytest.raises(DatasetLayoutError, match=r"train_val_videodatainfo.json: not valid JSON") as info:
        MSRVTTDataModule(str(tmp_path), **SMALL).records("train")
    assert "\n" not in str(info.value)
    path.write_text(json.dumps({"videos": [{"video_id": "video0", "split": "train"}], "sentences": ["a cat"]}))
    with pytest.raises(DatasetLayoutError, match=r"train_val_videodatainfo.json: sentences\[0\]: expected"):
        MSRVTTDataModule(str(tmp_path), **SMALL).records("train")
    path.write_text(json.dumps({"videos": [{"video_id": "video0", "split": "dev"}], "sentences": []}))
    with pytest.raises(DatasetLayoutError, match=r"videos\[0\]: expected .*\"split\""):
        MSRVTTDataModule(str(tmp_path), **SMALL).records("train")
    path.write_text(json.dumps({"videos": []}))
    with pytest.raises(DatasetLayoutError, match=r'train_val_videodatainfo.json: "sentences": missing'):
        MSRVTTDataModule(str(tmp_path), **SMALL).records("train")


def test_corrupt_video_is_skipped_and_counted(msrvtt_root, tmp_path):
    shutil.copytree(msrvtt_root, tmp_path / "copy")
    (tmp_path / "copy" / "videos" / "video19.mp4").write_bytes(b"\x00not a video" * 100)
    dm = MSRVTTDataModule(str(tmp_path / "copy"), **{**SMALL, "batch_size": 6})
    batch = next(iter(dm.val_dataloader()))
    assert batch[keys.VIDEO].shape[0] == 6 and dm.decode_failures.value == 1
    # the replacement brings its own references, never another video's
    for video_id, references in zip(batch[keys.VIDEO_ID], batch[keys.REFERENCES], strict=True):
        assert references == SPEC.captions(int(video_id[5:]))
    assert "video19" not in batch[keys.VIDEO_ID]


def test_word_vocabulary_min_count_and_tokenizer_files_through_the_datamodule(msrvtt_root, tmp_path):
    full = MSRVTTDataModule(str(msrvtt_root), **SMALL)
    rare = MSRVTTDataModule(str(msrvtt_root), min_word_count=1000, **SMALL)
    assert rare.vocab_size == 4 < full.vocab_size
    assert set(next(iter(rare.train_dataloader()))[keys.CAPTION_TOKENS].unique().tolist()) == {0, 1, 2, 3}
    # a vocabulary file
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["a", "red", "circle", "moves"]))
    dm = MSRVTTDataModule(str(msrvtt_root), tokenizer=str(vocab), **SMALL)
    assert dm.vocab_size == 8 and dm.tokenizer.decode(dm.tokenizer.encode("a red square moves", 8)) == "a red <unk> moves"
    # a tokenizer.json trained with the tokenizers library on the training captions
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    hf = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    hf.normalizer = normalizers.BertNormalizer()
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    captions = [c for r in full.records("train") for c in r.captions]
    hf.train_from_iterator(captions, trainers.WordPieceTrainer(vocab_size=120, special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]"]))
    hf.save(str(tmp_path / "tokenizer.json"))
    dm = MSRVTTDataModule(str(msrvtt_root), tokenizer=str(tmp_path / "tokenizer.json"), **SMALL)
    assert dm.tokenizer_config["type"] == "huggingface" and dm.vocab_size == hf.get_vocab_size()
    batch = next(iter(dm.train_dataloader()))
    for row, caption in zip(batch[keys.CAPTION_TOKENS].tolist(), batch[keys.CAPTION], strict=True):
        assert row[0] == 1 and 2 in row
        assert normalize_caption(dm.tokenizer.decode(row).replace(" ##", "")) == normalize_caption(caption)


def test_msvd_layout_english_only_and_quoted_commas(msvd_root):
    text = (msvd_root / MSVD_CSV).read_text()
    assert text.startswith("VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description")
    assert ",German," in text and '"the ' in text  # non-English rows; descriptions with commas are quoted
    dm = MSVDDataModule(str(msvd_root), **MSVD_BOUNDS, **SMALL)
    ids = {subset: [r.video_id for r in dm.records(subset)] for subset in ("train", "val", "test")}
    assert ids == {"train": [f"vid{n}" for n in range(1, 19)], "val": [f"vid{n}" for n in range(19, 25)],
                   "test": [f"vid{n}" for n in range(25, 31)]}
    mapping = dict(line.split()[::-1] for line in (msvd_root / "youtube_mapping.txt").read_text().splitlines())
    for record in dm.records("train"):
        index = int(record.video_id[3:]) - 1
        assert record.captions == tuple(SPEC.captions(index))  # English only, commas intact
        assert record.path == str(msvd_root / "YouTubeClips" / f"{mapping[record.video_id]}.avi")
    assert any(", which is" in c for r in dm.records("train") for c in r.captions)
    batch = next(iter(dm.val_dataloader()))
    assert batch[keys.VIDEO].shape == (4, 1, 3, 4, 32, 32) and len(batch[keys.REFERENCES][0]) == 10
    # the standard boundaries (vid1-1200 train) put this small copy in train
    assert len(MSVDDataModule(str(msvd_root), **SMALL).records("train")) == 30


def test_msvd_bad_rows_and_malformed_files(msvd_root, tmp_path):
    root = tmp_path / "msvd"
    shutil.copytree(msvd_root, root)
    mapping = (root / "youtube_mapping.txt").read_text().splitlines()
    key2 = mapping[1].split()[0]  # vid2
    youtube_id, start, end = key2.rsplit("_", 2)
    with open(root / MSVD_CSV, "a") as file:
        file.write('notReleased1,5,9,1,clean,10,English,"a cat, jumping"\n')
        file.write(f"{youtube_id},{start},{end},2,clean,10,English,\n")
        file.write(f"{youtube_id},{start},{end},2,clean,10,German,\n")  # not English: not even counted
    (root / "video_corpus.csv").write_bytes((root / MSVD_CSV).read_bytes())  # the other accepted name
    (root / MSVD_CSV).unlink()
    # vid31 is mapped but never described
    (root / "youtube_mapping.txt").write_text("\n".join(mapping + ["zzzzzzzzzzz_1_2 vid31"]) + "\n")
    dm = MSVDDataModule(str(root), train_end=18, val_end=24, test_end=31, **SMALL)
    train, messages = _caught(lambda: dm.records("train"))
    source = str(root / "video_corpus.csv")
    assert f"{source}: 1 caption(s) name a video id that the annotations do not list; skipped (first: " \
           "notReleased1_5_9: 'a cat, jumping')" in messages
    assert f"{source}: 1 empty caption(s); skipped (first: vid2: '')" in messages
    assert len(train) == 18 and dm.annotation_problems("train")["empty_caption"] == 1
    test, messages = _caught(lambda: dm.records("test"))
    assert dm.annotation_problems("test") == {"unknown_video_id": 1, "empty_caption": 0, "no_caption": 1,
                                              "missing_video": 1}
    assert "vid31" in [r.video_id for r in dm.list_records("test")]
    (root / "youtube_mapping.txt").write_text("abc_1_2 video7\n")
    with pytest.raises(DatasetLayoutError, match=r"youtube_mapping.txt:1: expected '<key> vid<N>'"):
        MSVDDataModule(str(root), **SMALL).records("train")
    (root / "youtube_mapping.txt").write_text("abc_1_2 vid7\n")
    (root / "video_corpus.csv").write_text("VideoID,Start,End,Text\nabc,1,2,hello\n")
    with pytest.raises(DatasetLayoutError, match=r"video_corpus.csv: not an MSVD corpus file \(missing column"):
        MSVDDataModule(str(root), **SMALL).records("train")
    with pytest.raises(DatasetLayoutError, match="split boundaries"):
        MSVDDataModule(str(root), train_end=10, val_end=5, **SMALL)


def test_cli_synth_and_check_msrvtt(tmp_path, capsys):
    out = tmp_path / "msrvtt"
    assert main(["data", "synth", "--format", "msrvtt", "--out", str(out), "--num-classes", "2",
                 "--videos-per-class", "5", "--num-frames", "8", "--size", "32x32", "--seed", "4"]) == 0
    assert f"wrote a synthetic msrvtt dataset to {out} (10 videos)" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(f"video{i}.mp4" for i in range(10))
    (out / "videos" / "video9.mp4").unlink()
    assert main(["data", "check", "--format", "msrvtt", "--root", str(out)]) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[1].split() == ["train", "6", "6", "0", "0"]
    assert report[2].split() == ["val", "2", "2", "0", "0"]
    assert report[3].split() == ["test", "2", "1", "1", "0"]
    assert main(["data", "check", "--format", "msrvtt", "--root", str(out), "--strict"]) == 1
    capsys.readouterr()
    assert main(["data", "synth", "--format", "msvd", "--out", str(tmp_path / "msvd"), "--num-classes", "2",
                 "--videos-per-class", "2", "--num-frames", "8", "--size", "32x32"]) == 0
    assert "(4 videos)" in capsys.readouterr().out
    (out / "test_videodatainfo.json").write_text("[1, 2")
    assert main(["data", "check", "--format", "msrvtt", "--root", str(out)]) != 0
    assert "test_videodatainfo.json: not valid JSON" in capsys.readouterr().err
