"""What the captioning datasets (MSR-VTT, MSVD) share: caption records, the clip dataset, the DataModule.

A training sample is one clip (frames spread over the whole video, `frame_sampling="uniform"`) with
ONE of its video's captions, drawn afresh each time from torch's generator, as `keys.CAPTION` and
`keys.CAPTION_TOKENS`. An evaluation sample carries every caption of its video as `keys.REFERENCES`.

Annotation problems that real copies have are skipped, counted per subset (`annotation_problems`) and
warned about once per annotation file: a caption naming a video that the file does not list, an
empty caption, a video without any caption (dropped from training, kept for val / test / predict but
left out of `references`), a listed video whose file is missing.
"""

from __future__ import annotations

import os
import warnings
from abc import abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch.utils.data import default_collate

from lit_video.data import keys
from lit_video.data.base import ClipDataset, VideoDataModule
from lit_video.data.records import Listing, RefusedEntry, VideoRecord
from lit_video.data.tokenizer import CaptionTokenizer, WordTokenizer, load_tokenizer
from lit_video.errors import LitVideoError

# What `annotation_problems` counts (every key is always present)
UNKNOWN_VIDEO_ID = "unknown_video_id"  # a caption whose video id the annotations do not list
EMPTY_CAPTION = "empty_caption"  # an empty or whitespace-only caption
NO_CAPTION = "no_caption"  # a listed video without any caption
MISSING_VIDEO = "missing_video"  # a listed video whose file is not there
PROBLEMS = (UNKNOWN_VIDEO_ID, EMPTY_CAPTION, NO_CAPTION, MISSING_VIDEO)


@dataclass(frozen=True)
class CaptionRecord(VideoRecord):
    """One video with its reference captions (label is -1: captioning has no classes).

    Args:
        captions: the video's captions as written in the annotations (non-empty ones only).
    """

    captions: tuple[str, ...] = ()


@dataclass
class CaptionListing:
    """The videos of one subset as the annotations list them, and what was skipped while reading them.

    Args:
        records: every listed video of the subset, in annotation order, present or not.
        source: the annotation file(s), named in warnings.
        problems: counts of skipped entries, by kind (UNKNOWN_VIDEO_ID, EMPTY_CAPTION, NO_CAPTION).
        examples: the first offending entry of each kind.
        refused: listed videos whose file would lead outside the dataset's video folder (never read).
    """

    records: list[CaptionRecord]
    source: str
    problems: Counter = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    refused: list[RefusedEntry] = field(default_factory=list)


def build_listing(source: str, videos: Iterable[tuple[str, str]], captions: Iterable[tuple[str, str]],
                  known_ids: set[str]) -> CaptionListing:
    """Attach captions to the videos of a subset, counting what cannot be used.

    Args:
        source: the annotation file(s), for warnings.
        videos: (video_id, path) of the subset's videos, in order.
        captions: (video_id, caption) of the whole annotation file (every subset it covers).
        known_ids: every video id the annotations list (any subset); a caption naming another is unknown.
    """
    videos = list(videos)
    by_video: dict[str, list[str]] = {video_id: [] for video_id, _ in videos}
    listing = CaptionListing([], source)

    def skip(kind: str, example: str) -> None:
        listing.problems[kind] += 1
        listing.examples.setdefault(kind, example)

    for video_id, caption in captions:
        if video_id not in known_ids:
            skip(UNKNOWN_VIDEO_ID, f"{video_id}: {caption!r}")
        elif video_id in by_video:  # captions of the file's other subsets are theirs to count
            if caption.strip():
                by_video[video_id].append(caption.strip())
            else:
                skip(EMPTY_CAPTION, f"{video_id}: {caption!r}")
    for video_id, path in videos:
        if not by_video[video_id]:
            skip(NO_CAPTION, video_id)
        listing.records.append(CaptionRecord(path, -1, video_id, tuple(by_video[video_id])))
    return listing


def collate_captions(samples: list[dict]) -> dict:
    """default_collate for everything but REFERENCES, which stays a list (batch) of lists of str:
    videos have different numbers of captions."""
    references = [sample.pop(keys.REFERENCES) for sample in samples] if keys.REFERENCES in samples[0] else None
    batch = default_collate(samples)
    if references is not None:
        batch[keys.REFERENCES] = references
    return batch


class CaptionClipDataset(ClipDataset):
    """Clips with captions: training draws one caption per item, evaluation gives all references.

    Args:
        records: the videos, with their captions.
        tokenizer: turns the drawn caption into CAPTION_TOKENS.
        max_caption_len: length of CAPTION_TOKENS (BOS and EOS included); longer captions are cut.
        *args, **kwargs: as `ClipDataset` (sampler, transform, train, decoder, failures, ...).
    """

    def __init__(self, records: list[CaptionRecord], *args, tokenizer: CaptionTokenizer, max_caption_len: int,
                 **kwargs):
        super().__init__(records, *args, **kwargs)
        self.tokenizer = tokenizer
        self.max_caption_len = max_caption_len

    def load(self, index: int) -> dict:
        sample = super().load(index)  # decode failures raise here and keep the parent's skip-and-count
        record: CaptionRecord = self.records[index]
        if self.train:
            # torch's generator again: DataLoader seeds it per worker, seed_everything seeds it
            caption = record.captions[int(torch.randint(len(record.captions), ()).item())]
            ids = self.tokenizer.encode(caption, self.max_caption_len)
            tokens = torch.full((self.max_caption_len,), self.tokenizer.pad_id, dtype=torch.int64)  # (L,)
            tokens[: len(ids)] = torch.tensor(ids, dtype=torch.int64)
            sample[keys.CAPTION] = caption
            sample[keys.CAPTION_TOKENS] = tokens
        else:
            sample[keys.REFERENCES] = list(record.captions)
        return sample


class CaptioningDataModule(VideoDataModule):
    """Base DataModule of the captioning datasets (not registered itself).

    Args:
        root: the dataset folder, laid out as the official release.
        tokenizer: a tokenizer.json (the `tokenizers` library) or a vocabulary file (one token a line);
            None builds a word vocabulary from the training split's captions.
        min_word_count: with tokenizer None, words seen fewer times in training captions become <unk>.
        max_caption_len: tokens of CAPTION_TOKENS, BOS and EOS included.
        frame_sampling: "uniform" (frames spread over the whole video, as captioning models see it) or
            "strided".
        flip: random horizontal flips for training; off by default, captions may say "left" or "right".
        **kwargs: clip, loader, decoder and held-out split (val_fraction, split_seed, val_list) arguments
            of `VideoDataModule`.
    """

    stratify_heldout = False  # captioned videos have no class
    # the task records the tokenizer itself (the linked `tokenizer_config`) under the name `tokenizer`
    unlogged_arguments = ("tokenizer",)

    def __init__(
        self,
        root: str,
        tokenizer: str | None = None,
        min_word_count: int = 1,
        max_caption_len: int = 24,
        frame_sampling: str = "uniform",
        flip: bool = False,
        **kwargs,
    ):
        super().__init__(root, frame_sampling=frame_sampling, flip=flip, **kwargs)
        if max_caption_len < 3:
            raise LitVideoError(f"data.init_args.max_caption_len: must hold BOS, a word and EOS (at least 3), "
                                f"got {max_caption_len}")
        self.tokenizer_path = tokenizer
        self.min_word_count = min_word_count
        self.max_caption_len = max_caption_len
        self._listings: dict[str, CaptionListing] = {}
        self._warned: set[tuple[str, str]] = set()

    # --- what a dataset file provides -------------------------------------------------------------

    @abstractmethod
    def read_listing(self, subset: str) -> CaptionListing:
        """Parse the annotations of `subset` (usually with `build_listing`).

        Raises DatasetLayoutError when the annotation files are missing or malformed."""

    # --- shared --------------------------------------------------------------------------------

    @property
    def classes(self) -> list[str]:
        return []

    def listing(self, subset: str) -> CaptionListing:
        """The parsed annotations of `subset`, read once; problems are warned about once per file."""
        if subset not in self._listings:
            listing = self.read_listing(subset)
            self._listings[subset] = listing
            for kind in (UNKNOWN_VIDEO_ID, EMPTY_CAPTION):
                self._warn_once(listing, kind, "skipped")
            self._warn_once(listing, NO_CAPTION, "dropped from training" if subset == "train"
                            else f"kept in {subset} without references")
        return self._listings[subset]

    def _warn_once(self, listing: CaptionListing, kind: str, outcome: str) -> None:
        count = listing.problems[kind]
        # an unknown id belongs to no subset: train and val read from one file warn about it once
        if not count or (kind == UNKNOWN_VIDEO_ID and (listing.source, kind) in self._warned):
            return
        self._warned.add((listing.source, kind))
        what = {UNKNOWN_VIDEO_ID: "caption(s) name a video id that the annotations do not list",
                EMPTY_CAPTION: "empty caption(s)", NO_CAPTION: "video(s) without any caption"}[kind]
        warnings.warn(f"{listing.source}: {count} {what}; {outcome} (first: {listing.examples[kind]})",
                      stacklevel=3)

    def list_records(self, subset: str) -> Listing:
        listing = self.listing(subset)
        # nothing to learn from a video without a caption; evaluation still predicts one for it
        records = [r for r in listing.records if r.captions] if subset == "train" else listing.records
        return Listing(records, listing.refused)

    def annotation_problems(self, subset: str) -> dict[str, int]:
        """Entries skipped while reading `subset`, by kind: unknown_video_id, empty_caption, no_caption,
        missing_video. Unknown ids are counted for every subset read from the file that has them."""
        listing = self.listing(subset)
        counts = {kind: listing.problems[kind] for kind in PROBLEMS}
        counts[MISSING_VIDEO] = sum(not os.path.exists(r.path) for r in self.list_records(subset))
        return counts

    @cached_property
    def tokenizer(self) -> CaptionTokenizer:
        """The tokenizer file's, or words of the training subset's captions (listed videos, present or not,
        so that every copy of a dataset gets the same vocabulary; held-out validation videos left out)."""
        if self.tokenizer_path is not None:
            return load_tokenizer(self.tokenizer_path)
        captions = (c for record in self.listed_records("train") for c in record.captions)
        return WordTokenizer.build(captions, min_count=self.min_word_count)

    @property
    def tokenizer_config(self) -> dict:
        """The tokenizer as a JSON-serialisable dict (the task stores it in checkpoints)."""
        return self.tokenizer.to_config()

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def references(self, subset: str) -> dict[str, list[str]]:
        """video_id -> every reference caption, for the present videos of `subset` that have captions."""
        return {r.video_id: list(r.captions) for r in self.records(subset) if r.captions}

    def make_dataset(self, subset: str) -> CaptionClipDataset:
        plain = super().make_dataset(subset)  # the shared transform and record checks
        return CaptionClipDataset(
            plain.records, plain.sampler, plain.transform, train=plain.train, decoder=plain.decoder,
            failures=plain.failures, frames_root=plain.frames_root, device_decode=plain.device_decode,
            tokenizer=self.tokenizer,
            max_caption_len=self.max_caption_len,
        )

    def collate_fn(self) -> Callable[[list[dict]], dict]:
        return collate_captions
