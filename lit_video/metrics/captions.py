"""Caption metrics as papers report them: BLEU-1..4, METEOR, ROUGE-L and CIDEr-D from pycocoevalcap.

Usage::

    lit-video evaluate captioning --gt train_val_videodatainfo.json --pred results.json [--split validate]

prints the table and writes DIR/caption_metrics.json (DIR defaults to the folder of results.json); from
Python, `score_corpus(references, predictions)` scores {video_id: [reference, ...]} against
{video_id: caption}.

What is computed is COCOEvalCap's pipeline (pycocoevalcap/eval.py), with pycocoevalcap's own code:

- The videos scored are those that have a prediction (COCOEvalCap's ids come from the results). A prediction
  for a video without references, or whose reference list is empty, is skipped, counted and warned about;
  `evaluate_files` also warns about videos of the annotations without a prediction (an error when strict).
- References and predictions are tokenized apart with the Stanford PTB tokenizer (lowercased, one caption a
  line) and the tokens in pycocoevalcap's PUNCTUATIONS are dropped; then Bleu(4), Meteor(), Rouge() and
  Cider() score the tokenized corpus. pycocoevalcap's Cider is CIDEr-D (clipped counts, length penalty,
  sigma 6), the figure papers call CIDEr. SPICE is left out: it downloads Stanford models on first use.
- Every score is a corpus score. BLEU pools n-gram counts over all videos, and CIDEr-D takes its idf from
  the references of the videos being scored: on a one-video corpus every idf is log(1/1) = 0 and CIDEr is
  0 whatever the prediction. So `score_corpus` must be given the whole evaluation set at once (a
  distributed task gathers every rank's predictions first); averaging per-video or per-batch scores gives
  different, wrong numbers.

Java. The PTB tokenizer and METEOR are Java programs. Without a working `java`, METEOR is left out of the
results and tokenization falls back to `python_ptb_tokenize`, a pure-Python tokenizer that reproduces
PTB + the punctuation removal on ordinary captions; both are said once in a warning. Each METEOR call
starts a JVM (about 5 s); `meteor=False` skips it.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lit_video.errors import DatasetLayoutError, LitVideoError

METRICS_FILE = "caption_metrics.json"
# the order COCOEvalCap reports them in; METEOR is present only when Java runs
METRIC_KEYS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
COUNT_KEY = "num_videos"  # in evaluate_files' stats and the JSON, beside the metrics

_WARNED: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    """A process-wide one-time warning: the Java fallbacks would otherwise repeat every validation epoch."""
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(message, stacklevel=3)


@functools.lru_cache(maxsize=1)
def java_available() -> bool:
    """Whether `java -version` runs (cached for the process)."""
    try:
        return subprocess.run(["java", "-version"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


# --------------------------------------------------------------------------- tokenization
_CONTRACTIONS = re.compile(r"\b(can)(not)\b|\b(gon|wan)(na)\b|\b(got)(ta)\b")
# split off before the word scan: don't -> do n't, he's -> he 's (the letter before stays with the word)
_CLITIC = re.compile(r"(?<=\w)(n't|'(?:s|re|ve|ll|d|m))\b")
_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", '"': " ", "\u201c": " ", "\u201d": " ",
                         "\u2013": " ", "\u2014": " "})
_PTB_WORD = re.compile(r"""
      n't | '(?:s|re|ve|ll|d|m)\b | 'n'          # clitics, split off above; rock 'n' roll
    | (?:[^\W\d_]\.){2,}(?!\w)                   # u.s. e.g. a.m.
    | (?:mr|mrs|ms|dr|st|jr|sr|etc|vs|prof)\.(?!\w)
    | \d+(?:[.,:/]\d+)+                          # 3.5 1,000 10:30 1/2
    | \w+(?:[-./@']\w+)*                         # t-shirt o'clock www.site.com and/or
    | [?!]{2,}                                   # PTB keeps ?! and !! as one token
    | [^\w\s]                                    # any other symbol alone
""", re.VERBOSE)
_BRACKETS = {"(": "-lrb-", ")": "-rrb-", "[": "-lsb-", "]": "-rsb-", "{": "-lcb-", "}": "-rcb-"}


def _punctuations() -> frozenset[str]:
    from pycocoevalcap.tokenizer.ptbtokenizer import PUNCTUATIONS

    return frozenset(PUNCTUATIONS)


def python_ptb_tokenize(caption: str) -> str:
    """Tokenize one caption as pycocoevalcap's PTBTokenizer does, without Java.

    Lowercases, splits off punctuation, brackets (-> -lrb- ...) and the clitics 's 're 've 'll 'd 'm n't
    (also can|not, gon|na, wan|na, got|ta), keeps abbreviations (u.s., e.g., mr.), numbers (3.5, 1,000),
    hyphenated words and URLs whole, then drops pycocoevalcap's PUNCTUATIONS. Equal to PTB on ordinary
    captions; rare forms differ (PTB keeps "at&t" and "<b>" whole, splits "v1.2" and "y'all").

    Args:
        caption: the raw caption.

    Returns:
        the space-joined tokens ("" for a caption of punctuation only).
    """
    text = caption.lower().translate(_QUOTES)
    text = _CONTRACTIONS.sub(lambda m: " ".join(g for g in m.groups() if g), text)
    text = _CLITIC.sub(r" \1", text)
    punctuations = _punctuations()
    tokens = (_BRACKETS.get(token, token) for token in _PTB_WORD.findall(text))
    return " ".join(token for token in tokens if token not in punctuations)


def _ptb_folder_writable() -> bool:
    """PTBTokenizer writes its input to a temporary file beside its jar (and cannot be told otherwise)."""
    from pycocoevalcap.tokenizer import ptbtokenizer

    return os.access(Path(ptbtokenizer.__file__).parent, os.W_OK)


def tokenize_corpus(captions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """PTB-tokenize every caption and drop punctuation, as COCOEvalCap does before scoring.

    Uses pycocoevalcap's PTBTokenizer (Java). Without Java, or where pycocoevalcap's package folder is not
    writable (a read-only shared environment; the tokenizer puts its temporary file there), it falls back
    to `python_ptb_tokenize` with a warning: equal tokens on ordinary captions, and no crash mid-sweep.

    Args:
        captions: {video_id: [caption, ...]}.

    Returns:
        {video_id: [tokenized caption, ...]}, same keys and lengths (a key with no captions maps to []).
    """
    out: dict[str, list[str]] = {key: [] for key in captions}
    # Every kind of line break becomes a space: the Java tokenizer reads one caption a line and pairs the
    # lines back to the videos by position, so a stray \r or \u2028 would shift all that follow.
    flat = {key: [" ".join(str(c).split()) for c in value] for key, value in captions.items() if value}
    if not flat:
        return out
    reason = None
    if not java_available():
        reason = "java is not available"
    elif not _ptb_folder_writable():
        from pycocoevalcap.tokenizer import ptbtokenizer

        reason = f"{Path(ptbtokenizer.__file__).parent} is not writable (the PTB tokenizer's temporary file)"
    if reason is None:
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tokenized = PTBTokenizer().tokenize({key: [{"caption": c} for c in value] for key, value in flat.items()})
        if all(len(tokenized.get(key, ())) == len(value) for key, value in flat.items()):
            out.update(tokenized)
            return out
        reason = "the Java PTB tokenizer returned fewer lines than captions"
    _warn_once(f"tokenizer: {reason}", f"caption metrics: {reason}; tokenizing captions with the Python "
               "fallback (equal to PTB on ordinary captions)")
    out.update({key: [python_ptb_tokenize(c) for c in value] for key, value in flat.items()})
    return out


# --------------------------------------------------------------------------- scoring
@dataclass(frozen=True)
class CorpusScores:
    """What `evaluate_corpus` returns.

    Args:
        scores: {metric: value} with the keys of `METRIC_KEYS` (METEOR only when it ran).
        num_videos: how many videos were scored.
        num_unknown: predictions skipped because their video is not among the references.
        num_without_references: predictions skipped because their video's reference list is empty.
        video_cider: each scored video's CIDEr-D, by id (as a string): the corpus CIDEr is their mean (each
            takes its idf from the whole corpus).
    """

    scores: dict[str, float]
    num_videos: int
    num_unknown: int = 0
    num_without_references: int = 0
    video_cider: dict[str, float] = field(default_factory=dict)


def _run_meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> float:
    from pycocoevalcap.meteor.meteor import Meteor

    meteor = Meteor()
    try:
        return float(meteor.compute_score(gts, res)[0])
    finally:
        # Meteor's __del__ takes its lock, which a failed compute_score leaves held: end the JVM here so
        # an error surfaces instead of a hang.
        if meteor.lock.locked():
            meteor.lock.release()
        meteor.meteor_p.kill()
        meteor.meteor_p.wait()


def evaluate_corpus(references: Mapping[Any, Sequence[str]], predictions: Mapping[Any, str], *,
                    meteor: bool = True) -> CorpusScores:
    """Score predicted captions against their references over the whole corpus, as COCOEvalCap does.

    Args:
        references: {video_id: [reference caption, ...]} (ids compared as strings).
        predictions: {video_id: predicted caption}; the videos scored are these.
        meteor: run METEOR (when Java runs; about 5 s for the JVM).

    Returns:
        the scores and the counts of scored and skipped videos.

    Raises:
        LitVideoError: no prediction has references, so there is nothing to score.
    """
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    refs = {str(key): list(value) for key, value in references.items()}
    gts: dict[str, list[str]] = {}
    res: dict[str, list[str]] = {}
    unknown: list[str] = []
    without: list[str] = []
    for key, caption in predictions.items():
        key = str(key)
        if key not in refs:
            unknown.append(key)
        elif not refs[key]:
            without.append(key)
        else:
            gts[key], res[key] = refs[key], [caption]
    if unknown:
        warnings.warn(f"caption metrics: skipped {len(unknown)} predictions for videos without references "
                      f"(first: {unknown[0]!r})", stacklevel=2)
    if without:
        warnings.warn(f"caption metrics: skipped {len(without)} videos whose reference list is empty "
                      f"(first: {without[0]!r})", stacklevel=2)
    if not gts:
        raise LitVideoError(f"no video to score: none of the {len(predictions)} predictions has references")
    gts, res = tokenize_corpus(gts), tokenize_corpus(res)

    scores: dict[str, float] = {}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores.update({f"Bleu_{n + 1}": float(value) for n, value in enumerate(bleu)})
    if meteor and java_available():
        scores["METEOR"] = _run_meteor(gts, res)
    elif meteor:
        _warn_once("meteor", "caption metrics: java is not available, METEOR is left out")
    scores["ROUGE_L"] = float(Rouge().compute_score(gts, res)[0])
    cider, video_cider = Cider().compute_score(gts, res)  # the per-video scores in the order of gts' keys
    scores["CIDEr"] = float(cider)
    return CorpusScores(scores, len(gts), len(unknown), len(without),
                        {key: float(value) for key, value in zip(gts, video_cider, strict=True)})


def score_corpus(references: Mapping[Any, Sequence[str]], predictions: Mapping[Any, str], *,
                 meteor: bool = True) -> dict[str, float]:
    """BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of the predicted videos, as pycocoevalcap's COCOEvalCap.

    Pass the whole evaluation set at once: the scores are corpus scores (see the module docstring).
    `evaluate_corpus` also returns how many videos were scored.

    Args:
        references: {video_id: [reference caption, ...]}.
        predictions: {video_id: predicted caption}; a video without references is skipped and warned about.
        meteor: run METEOR (when Java runs).

    Returns:
        {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR" (only when Java runs), "ROUGE_L", "CIDEr"}.
    """
    return evaluate_corpus(references, predictions, meteor=meteor).scores


# --------------------------------------------------------------------------- files
def _read_json(path: str | os.PathLike, what: str) -> Any:
    from lit_video.data.records import read_json_file

    return read_json_file(path, f"no such {what} file")


def _caption(entry: Any, where: str) -> str:
    if not isinstance(entry, dict):
        raise DatasetLayoutError(f"{where}: expected an object, got {type(entry).__name__}")
    caption = entry.get("caption")
    if not isinstance(caption, str):
        problem = "no 'caption'" if caption is None else f"'caption' is a {type(caption).__name__}, not text"
        raise DatasetLayoutError(f"{where}: {problem}")
    return caption


def _entry_id(entry: dict, keys: Sequence[str], where: str) -> str:
    for key in keys:
        if key in entry:
            return str(entry[key])
    raise DatasetLayoutError(f"{where}: no {' or '.join(repr(k) for k in keys)}")


def read_ground_truth(path: str | os.PathLike, split: str | None = None) -> dict[str, list[str]]:
    """Reference captions of an MSR-VTT `*_videodatainfo.json` or a COCO caption annotation file.

    Args:
        path: MSR-VTT (`sentences: [{video_id, caption, sen_id}]`, `videos: [{video_id, split}]`) or COCO
            (`annotations: [{image_id, caption}]`).
        split: MSR-VTT only: keep the videos whose `split` is this (train, validate, test).

    Returns:
        {video_id (str): [caption, ...]} in file order.

    Raises:
        DatasetLayoutError: a missing file, bad JSON, another layout, an entry without id or caption, or a
            split no video has.
    """
    data = _read_json(path, "caption annotation")
    if isinstance(data, dict) and isinstance(data.get("sentences"), list):
        entries, id_keys, kind = data["sentences"], ("video_id",), "sentences"
    elif isinstance(data, dict) and isinstance(data.get("annotations"), list):
        entries, id_keys, kind = data["annotations"], ("image_id", "video_id"), "annotations"
    else:
        raise DatasetLayoutError(f"{path}: not caption annotations (expected MSR-VTT 'sentences' or COCO "
                                 f"'annotations', a list of {{id, caption}})")
    keep = None
    if split is not None:
        if kind != "sentences" or not isinstance(data.get("videos"), list):
            raise DatasetLayoutError(f"{path}: a split needs an MSR-VTT file with 'videos' [{{video_id, split}}]")
        videos = [v for v in data["videos"] if isinstance(v, dict)]
        keep = {str(v.get("video_id")) for v in videos if str(v.get("split")) == str(split)}
        if not keep:
            found = sorted({str(v.get("split")) for v in videos})
            raise DatasetLayoutError(f"{path}: no video has split {split!r} (found: {', '.join(found) or 'none'})")
    references: dict[str, list[str]] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: {kind}[{i}]"
        caption = _caption(entry, where)
        video_id = _entry_id(entry, id_keys, where)
        if keep is None or video_id in keep:
            references.setdefault(video_id, []).append(caption)
    return references


def read_results(path: str | os.PathLike) -> dict[str, str]:
    """Predicted captions of a COCO caption results file `[{"image_id": id, "caption": str}, ...]`.

    `video_id` is accepted for `image_id`; ids are compared as strings. A repeated id keeps its first
    caption (counted, warned once).

    Args:
        path: the results JSON.

    Returns:
        {video_id (str): caption} in file order.

    Raises:
        DatasetLayoutError: a missing file, bad JSON, not a list, or an entry without id or caption.
    """
    data = _read_json(path, "caption results")
    if not isinstance(data, list):
        raise DatasetLayoutError(f"{path}: caption results must be a list of {{image_id, caption}}, "
                                 f"got {type(data).__name__}")
    predictions: dict[str, str] = {}
    repeated: list[str] = []
    for i, entry in enumerate(data):
        where = f"{path}: result {i}"
        caption = _caption(entry, where)
        video_id = _entry_id(entry, ("image_id", "video_id"), where)
        if video_id in predictions:
            repeated.append(video_id)
        else:
            predictions[video_id] = caption
    if repeated:
        warnings.warn(f"{path}: {len(repeated)} results repeat an earlier id (first: {repeated[0]!r}); "
                      f"kept the first caption of each", stacklevel=2)
    return predictions


def evaluate_files(gt_path: str | os.PathLike, pred_path: str | os.PathLike, split: str | None = None, *,
                   meteor: bool = True, strict: bool = False) -> dict[str, float]:
    """Score a results file against an annotation file.

    Videos of the annotations (of `split`) without a prediction are not scored, as in COCOEvalCap; their
    count is warned about, or is an error with `strict`.

    Args:
        gt_path: MSR-VTT videodatainfo or COCO caption annotations (`read_ground_truth`).
        pred_path: COCO caption results (`read_results`).
        split: MSR-VTT split of the references (e.g. "validate", "test").
        meteor: run METEOR (when Java runs).
        strict: every video with references must have a prediction.

    Returns:
        the metrics (`score_corpus`'s keys) and "num_videos", the count of videos scored.

    Raises:
        LitVideoError: nothing to score, or (`strict`) a video with references but no prediction.
    """
    references = read_ground_truth(gt_path, split)
    predictions = read_results(pred_path)
    # scoring a subset gives numbers that are not comparable with the full split's: never silently
    missing = [video for video, refs in references.items() if refs and video not in predictions]
    # with none predicted, evaluate_corpus says there is nothing to score
    if missing and (strict or len(missing) < sum(1 for refs in references.values() if refs)):
        where = f"the {len(references)} videos" + (f" of split {split!r}" if split is not None else "")
        message = f"{pred_path}: no caption for {len(missing)} of {where} in {gt_path} (first: {missing[0]!r})"
        if strict:
            raise LitVideoError(f"{message}; every video needs a prediction")
        warnings.warn(f"{message}; scored the others only", stacklevel=2)
    try:
        result = evaluate_corpus(references, predictions, meteor=meteor)
    except LitVideoError as err:
        raise LitVideoError(f"{pred_path}: {err} in {gt_path}") from None
    return {**result.scores, COUNT_KEY: result.num_videos}


def format_table(stats: Mapping[str, float]) -> str:
    """The metrics one a line (in COCOEvalCap's order), then the number of videos."""
    lines = [f"{key:<8} {stats[key]:0.4f}" for key in METRIC_KEYS if key in stats]
    if COUNT_KEY in stats:
        lines.append(f"{'videos':<8} {int(stats[COUNT_KEY])}")
    return "\n".join(lines)


def write_metrics(stats: Mapping[str, float], out_dir: str | os.PathLike) -> Path:
    """Write the metrics (and num_videos) to `out_dir/caption_metrics.json` -> its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / METRICS_FILE
    keys = [key for key in (*METRIC_KEYS, COUNT_KEY) if key in stats]
    path.write_text(json.dumps({key: stats[key] for key in keys}, indent=2) + "\n")
    return path
