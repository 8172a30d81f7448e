"""MSR-VTT (video captioning), read as released.

Annotations: `train_val_videodatainfo.json` and `test_videodatainfo.json`, in the root or in
`annotations/` (or the release's `train_val_annotation/` / `test_videodata/`), each `{"info": ...,
"videos": [{"video_id": "video0", "category", "url", "start time", "end time", "split":
"train"|"validate"|"test", "id"}], "sentences": [{"caption", "video_id", "sen_id"}]}` (20 captions a
video). Subsets: train -> split "train", val -> "validate", test -> "test".

Videos: `video<N>.mp4`, in `videos/`, `videos/all/`, or the release's `TrainValVideo/` + `TestVideo/`
(any of these; the first folder holding a video wins).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from lit_video.data.base import register_datamodule
from lit_video.data.captioning import CaptioningDataModule, CaptionListing, build_listing
from lit_video.data.records import RefusedEntry, index_video_files, outside_reason, read_json_file
from lit_video.errors import DatasetLayoutError

# the released annotation files: train + validate videos and their sentences, and test's
MSRVTT_TRAIN_VAL = "train_val_videodatainfo.json"
MSRVTT_TEST = "test_videodatainfo.json"
ANNOTATION_DIRS = ("", "annotations", "train_val_annotation", "test_videodata")
VIDEO_DIRS = ("videos", "videos/all", "TrainValVideo", "TestVideo", "test_videodata/TestVideo")
SUBSET_SPLITS = {"train": "train", "val": "validate", "test": "test"}


def read_videodatainfo(path: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """(videos, [(video_id, caption)]) of an MSR-VTT annotation file, checked.

    Raises:
        DatasetLayoutError: one line naming the file and the offending key.
    """
    data = read_json_file(path, "missing MSR-VTT annotation file")
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"{path}: expected an object with videos and sentences")
    for key in ("videos", "sentences"):
        if not isinstance(data.get(key), list):
            raise DatasetLayoutError(f'{path}: "{key}": missing or not a list')
    for index, video in enumerate(data["videos"]):
        if not (isinstance(video, dict) and isinstance(video.get("video_id"), str)
                and video.get("split") in SUBSET_SPLITS.values()):
            raise DatasetLayoutError(f'{path}: videos[{index}]: expected {{"video_id": str, "split": '
                                     f'"train"|"validate"|"test", ...}}, got {str(video)[:80]}')
    captions = []
    for index, sentence in enumerate(data["sentences"]):
        if not (isinstance(sentence, dict) and isinstance(sentence.get("video_id"), str)
                and isinstance(sentence.get("caption"), str)):
            raise DatasetLayoutError(f'{path}: sentences[{index}]: expected {{"video_id": str, "caption": str, '
                                     f'...}}, got {str(sentence)[:80]}')
        captions.append((sentence["video_id"], sentence["caption"]))
    return data["videos"], captions


@register_datamodule("msrvtt")
class MSRVTTDataModule(CaptioningDataModule):
    """MSR-VTT in the official JSON + video-file layout.

    Args:
        root: folder holding the annotation JSONs (or `annotations/`) and the video folder(s).
        **kwargs: tokenizer, caption, clip, loader and decoder arguments of `CaptioningDataModule`.
    """

    def __init__(self, root: str, **kwargs):
        super().__init__(root, **kwargs)
        self._parsed: dict[Path, tuple[list[dict], list[tuple[str, str]]]] = {}

    def listing_name(self, subset: str) -> str:
        file = MSRVTT_TEST if subset == "test" else MSRVTT_TRAIN_VAL
        return f'{file} (split "{SUBSET_SPLITS[subset]}")'

    def annotation_file(self, subset: str) -> Path:
        name = MSRVTT_TEST if subset == "test" else MSRVTT_TRAIN_VAL
        for folder in ANNOTATION_DIRS:
            if (self.root / folder / name).is_file():
                return self.root / folder / name
        raise DatasetLayoutError(f"{self.root} is not an MSR-VTT root: no {name} in it or in annotations/")

    @cached_property
    def video_files(self) -> dict[str, tuple[str, Path]]:
        """video id -> (file, the video folder it was found in), over every known video folder (scanned
        once; the first folder wins)."""
        found: dict[str, tuple[str, Path]] = {}
        for folder in VIDEO_DIRS:
            for stem, path in index_video_files(self.root / folder).items():
                found.setdefault(stem, (path, self.root / folder))
        return found

    def read_listing(self, subset: str) -> CaptionListing:
        path = self.annotation_file(subset)
        if path not in self._parsed:  # train and val share one file: parse it once
            self._parsed[path] = read_videodatainfo(path)
        videos, captions = self._parsed[path]
        files = self.video_files
        split = SUBSET_SPLITS[subset]
        wanted, refused = [], []
        for index, video in enumerate(videos):
            if video["split"] != split:
                continue
            vid = video["video_id"]
            file, folder = files.get(vid, (str(self.root / "videos" / f"{vid}.mp4"), self.root / "videos"))
            reason = outside_reason(folder, file)  # the id is the file name: `..` or `/` in it reads elsewhere
            if reason:
                refused.append(RefusedEntry(f'{path}: videos[{index}]["video_id"]', vid, reason))
            else:
                wanted.append((vid, file))
        listing = build_listing(str(path), wanted, captions, {v["video_id"] for v in videos})
        listing.refused = refused
        return listing
