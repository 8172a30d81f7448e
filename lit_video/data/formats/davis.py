"""DAVIS 2016 / 2017 (semi-supervised VOS), read as released.

`JPEGImages/480p/<seq>/00000.jpg`, `Annotations/480p/<seq>/00000.png` (palette PNG: pixel value k =
object k, 0 background, 255 void), `ImageSets/<year>/<subset>.txt` (one sequence name a line). Every
frame is annotated; all objects are given in the first frame. 2016 is single-object: every object
of the (2017-style) annotations is merged into object 1, as DAVIS 2016 is evaluated. Predictions
go to `<out>/<seq>/<frame>.png`, the layout the DAVIS evaluator reads.

`annotations="unsupervised"` reads the DAVIS 2017 unsupervised release's `Annotations_unsupervised/<quality>/`
instead (the train and val sets re-annotated for the unsupervised task: the salient objects, ids 1..N, every
frame), scored with `lit-video evaluate vos --task unsupervised`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lit_video.data.base import register_datamodule
from lit_video.data.records import Listing, RefusedEntry, outside_reason, read_text_file
from lit_video.data.vos import VOSDataModule, VOSRecord, file_stems
from lit_video.errors import DatasetLayoutError
from lit_video.video.decode import FRAME_EXTENSIONS

YEARS = (2016, 2017)
ANNOTATIONS = {"semi-supervised": "Annotations", "unsupervised": "Annotations_unsupervised"}


@register_datamodule("davis")
class DAVISDataModule(VOSDataModule):
    """DAVIS in its official layout.

    Args:
        root: folder holding `JPEGImages/`, `Annotations/` and `ImageSets/` (or a `DAVIS/` folder that does).
        year: 2016 (single object) or 2017; picks `ImageSets/<year>/`.
        quality: frame and annotation resolution folder: "480p" or "Full-Resolution".
        train_subset: image set the training stage reads.
        val_subset: image set the validation stage reads.
        test_subset: image set the test and predict stages read (e.g. "test-dev"); None = val_subset.
        annotations: "semi-supervised" (`Annotations/`) or "unsupervised" (`Annotations_unsupervised/`, DAVIS
            2017's unsupervised release; year 2017).
        **kwargs: the clip, transform and loader arguments of `VOSDataModule`.
    """

    prediction_layout = "davis"

    def __init__(self, root: str, year: int = 2017, quality: str = "480p", train_subset: str = "train",
                 val_subset: str = "val", test_subset: str | None = None, annotations: str = "semi-supervised",
                 **kwargs):
        super().__init__(root, **kwargs)
        if year not in YEARS:
            raise DatasetLayoutError(f"DAVIS year must be 2016 or 2017, got {year!r}")
        if annotations not in ANNOTATIONS:
            raise DatasetLayoutError(f"DAVIS annotations must be one of {', '.join(ANNOTATIONS)}, got {annotations!r}")
        if annotations == "unsupervised" and year != 2017:
            raise DatasetLayoutError(f"DAVIS annotations: unsupervised is the DAVIS 2017 release "
                                     f"(Annotations_unsupervised); set year: 2017, got {year!r}")
        self.annotations = annotations
        if not (self.root / "JPEGImages").is_dir() and (self.root / "DAVIS" / "JPEGImages").is_dir():
            self.root = self.root / "DAVIS"  # the release archives unpack into DAVIS/
        self.year, self.quality = year, quality
        self.subsets = {"train": train_subset, "val": val_subset, "test": test_subset or val_subset}

    def listing_name(self, subset: str) -> str:
        return f"ImageSets/{self.year}/{self.subsets[subset]}.txt"

    @property
    def validation_source(self) -> str:
        if self.validates_on_test:
            return (f"{self.listing_name('val')}: the image set `test` reads too (test_subset unset or the same; "
                    "DAVIS results are usually reported on val)")
        return self.listing_name("val")

    @property
    def frames_dir(self) -> Path:
        return self.root / "JPEGImages" / self.quality

    @property
    def annotations_dir(self) -> Path:
        return self.root / ANNOTATIONS[self.annotations] / self.quality

    def image_set(self, name: str) -> list[str]:
        """Sequence names of `ImageSets/<year>/<name>.txt`, checked against the frame and mask folders
        (a name that leads outside them is left out: see `read_image_set`)."""
        return list(self.read_image_set(name))

    def read_image_set(self, name: str) -> Listing:
        """`image_set`, with the names that lead outside the frame or mask folder (`..`, an absolute
        path, a link out) in the result's `refused`."""
        path = self.root / "ImageSets" / str(self.year) / f"{name}.txt"
        if not path.is_file():
            raise DatasetLayoutError(
                f"{path}: no such DAVIS image set (expected ImageSets/{self.year}/{name}.txt, one sequence a line, "
                f"beside JPEGImages/{self.quality}/ and {ANNOTATIONS[self.annotations]}/{self.quality}/)"
            )
        if self.annotations == "unsupervised" and not self.annotations_dir.is_dir():
            raise DatasetLayoutError(f"{self.annotations_dir}: no such folder (annotations: unsupervised reads the "
                                     f"DAVIS 2017 unsupervised release's Annotations_unsupervised/{self.quality}/"
                                     f"<sequence>/*.png)")
        sequences = Listing()
        for number, line in enumerate(read_text_file(path).splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) > 1:
                raise DatasetLayoutError(f"{path}:{number}: expected one sequence name, got {line.strip()!r}")
            reason = next(filter(None, (outside_reason(folder, folder / parts[0])
                                        for folder in (self.frames_dir, self.annotations_dir))), None)
            if reason:
                sequences.refused.append(RefusedEntry(f"{path}:{number}", parts[0], reason))
                continue
            for folder in (self.frames_dir, self.annotations_dir):
                if not (folder / parts[0]).is_dir():
                    raise DatasetLayoutError(f"{path}:{number}: unknown sequence {parts[0]!r}: no folder {folder / parts[0]}")
            sequences.append(parts[0])
        return sequences

    def list_records(self, subset: str) -> Listing:
        sequences = self.read_image_set(self.subsets[subset])
        return Listing([
            VOSRecord(str(self.frames_dir / seq), -1, seq, annotations=str(self.annotations_dir / seq),
                      merge_objects=self.year == 2016)
            for seq in sequences
        ], sequences.refused)

    def annotation_folders(self) -> list[Path]:
        return [self.annotations_dir]

    def prediction_path(self, out_dir: str | os.PathLike, video_id: str, frame_name: str) -> Path:
        """`<out_dir>/<seq>/<frame>.png`, as the DAVIS evaluator (`lit-video evaluate vos`) reads results."""
        return Path(out_dir) / video_id / f"{frame_name}.png"

    def frames_to_write(self, video_id: str) -> list[str]:
        """Every frame of the sequence (the evaluator skips only the first and last)."""
        stems = file_stems(self.frames_dir / video_id, FRAME_EXTENSIONS)
        if not stems:
            raise DatasetLayoutError(f"unknown DAVIS sequence {video_id!r}: no frames in {self.frames_dir / video_id}")
        return stems
