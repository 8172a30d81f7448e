"""Caption metrics: equal to pycocoevalcap's COCOEvalCap pipeline, the Java-free fallback, the CIDEr corpus
trap, the MSR-VTT / COCO files and `lit-video evaluate captioning`."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from lit_video.cli import main
from lit_video.errors import DatasetLayoutError, LitVideoError
from lit_video.metrics import captions
from lit_video.metrics.captions import (
    METRIC_KEYS,
    evaluate_corpus,
    evaluate_files,
    java_available,
    python_ptb_tokenize,
    read_ground_truth,
    read_results,
    score_corpus,
    tokenize_corpus,
)

needs_java = pytest.mark.skipif(not java_available(), reason="java is not installed")
NO_METEOR = [key for key in METRIC_KEYS if key != "METEOR"]

SUBJECTS = ["a man", "A woman", "the girl", "two dogs", "a cat", "Someone", "the chef", "a boy"]
VERBS = ["is playing", "plays", "is cooking", "runs", "is singing", "talks about", "'s showing", "dances with"]
OBJECTS = ["a guitar", "pasta (in a kitchen)", "the ball", "a song", "a car's engine", "some food",
           "a t-shirt", "music"]
ENDINGS = ["", ".", "!", " ...", ", happily.", " -- fast", "?"]


def _caption(rng: np.random.Generator) -> str:
    """An MSR-VTT-like caption with capitals, punctuation, clitics, brackets and quotes now and then."""
    words = [SUBJECTS[rng.integers(len(SUBJECTS))], VERBS[rng.integers(len(VERBS))],
             OBJECTS[rng.integers(len(OBJECTS))]]
    if rng.random() < 0.2:
        words.insert(2, '"really"')
    if rng.random() < 0.15:
        words.append("and doesn't stop")
    text = " ".join(words) + ENDINGS[rng.integers(len(ENDINGS))]
    return text.upper() if rng.random() < 0.05 else text


def make_corpus(num_videos: int = 30, seed: int = 0) -> tuple[dict[str, list[str]], dict[str, str]]:
    """References (1..6 a video; video1 has one) and predictions (near copies, other captions, one empty)."""
    rng = np.random.default_rng(seed)
    references, predictions = {}, {}
    for v in range(num_videos):
        video_id = f"video{v}"
        references[video_id] = [_caption(rng) for _ in range(1 if v == 1 else int(rng.integers(2, 7)))]
        if v == 3:
            predictions[video_id] = ""
        elif v == 4:
            predictions[video_id] = "..."  # nothing left after the punctuation removal
        elif rng.random() < 0.6:
            predictions[video_id] = references[video_id][0].rstrip(".!?") + " today"
        else:
            predictions[video_id] = _caption(rng)
    return references, predictions


EXTRA_CAPTIONS = [
    "A man's playing a guitar.", "they're cooking, and it's 10:30 at 3.5 km.", "Don't cook the pasta -- it's hot!",
    "I cannot go; gonna wanna gotta", "50% of $5 costs #1 item and/or 1/2", "[a] {b} (c)", "wow!! what?? no....",
    "the dogs' toys and 'quoted' word", "Mr. Smith in the U.S. e.g. at 5 p.m.", "a 10-year-old kid on www.site.com",
    "\u201cquoted\u201d it\u2019s \u2013 a dash", "she'd he'll we've I'm ain't won't", "rock 'n' roll o'clock", "   ", "",
]


def pycocoevalcap_direct(references: dict[str, list[str]], predictions: dict[str, str],
                         meteor: bool = True) -> dict[str, float]:
    """COCOEvalCap.evaluate's steps, called on pycocoevalcap directly."""
    gts = {vid: [{"caption": c} for c in references[vid]] for vid in predictions}
    res = {vid: [{"caption": predictions[vid]}] for vid in predictions}
    tokenizer = PTBTokenizer()
    gts, res = tokenizer.tokenize(gts), tokenizer.tokenize(res)
    scores = dict(zip(["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"], Bleu(4).compute_score(gts, res, verbose=0)[0]))
    if meteor:
        scores["METEOR"] = Meteor().compute_score(gts, res)[0]
    scores["ROUGE_L"] = Rouge().compute_score(gts, res)[0]
    scores["CIDEr"] = Cider().compute_score(gts, res)[0]
    return {key: float(value) for key, value in scores.items()}


@pytest.fixture(scope="module")
def corpus() -> tuple[dict[str, list[str]], dict[str, str]]:
    return make_corpus()


@pytest.fixture(scope="module")
def direct(corpus) -> dict[str, float]:
    if not java_available():
        pytest.skip("java is not installed")
    return pycocoevalcap_direct(*corpus)


@pytest.fixture(autouse=True)
def fresh_warnings(monkeypatch):
    """Each test sees the once-per-process warnings, and a PATH change is not cached across tests."""
    monkeypatch.setattr(captions, "_WARNED", set())
    java_available.cache_clear()
    yield
    java_available.cache_clear()


@pytest.fixture
def no_java(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    java_available.cache_clear()
    assert not java_available()


def _assert_close(ours: dict[str, float], theirs: dict[str, float], keys) -> None:
    for key in keys:
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key


# --------------------------------------------------------------------------- scores
@needs_java
def test_scores_equal_pycocoevalcap_with_meteor(corpus, direct):
    references, predictions = corpus
    result = evaluate_corpus(references, predictions)
    assert list(result.scores) == list(METRIC_KEYS)
    assert result.num_videos == len(predictions) == 30
    _assert_close(result.scores, direct, METRIC_KEYS)
    # not a degenerate corpus: the scores say something
    assert 0.2 < result.scores["Bleu_1"] < 1 and 0 < result.scores["METEOR"] < 1 and result.scores["CIDEr"] > 0.5


@needs_java
def test_python_tokenizer_equals_ptb(corpus):
    references, predictions = corpus
    texts = [c for refs in references.values() for c in refs] + list(predictions.values()) + EXTRA_CAPTIONS
    ptb = PTBTokenizer().tokenize({str(i): [{"caption": t}] for i, t in enumerate(texts)})
    for i, text in enumerate(texts):
        assert python_ptb_tokenize(text) == ptb[str(i)][0], text
    assert python_ptb_tokenize("Don't STOP (now), it's 3.5 km.") == "do n't stop -lrb- now -rrb- it 's 3.5 km"


def test_without_java_no_meteor_and_the_same_other_scores(corpus, direct, no_java):
    with pytest.warns(UserWarning) as record:
        scores = score_corpus(*corpus)
    messages = " | ".join(str(w.message) for w in record)
    assert "METEOR is left out" in messages and "Python fallback" in messages
    assert list(scores) == NO_METEOR
    _assert_close(scores, direct, NO_METEOR)
    # said once per process, not on every call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        score_corpus(*corpus)


@needs_java
def test_read_only_pycocoevalcap_folder_falls_back_to_python(corpus, monkeypatch):
    references, _ = corpus
    java_tokens = tokenize_corpus(references)
    monkeypatch.setattr(captions, "_ptb_folder_writable", lambda: False)
    with pytest.warns(UserWarning, match="not writable"):
        assert tokenize_corpus(references) == java_tokens


@needs_java
def test_tokenize_corpus_keeps_every_video_aligned():
    captions_in = {"a": ["A man\rsings.", "two\nlines\u2028here"], "empty": [], "b": ["", "The END!"],
                   "c": ["  "]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the Java tokenizer ran, no fallback
        out = tokenize_corpus(captions_in)
    assert out == {"a": ["a man sings", "two lines here"], "empty": [], "b": ["", "the end"], "c": [""]}


@pytest.mark.filterwarnings("ignore:caption metrics")
def test_cider_of_one_video_is_zero_but_not_in_a_corpus(corpus, no_java):
    # the Python tokenizer (equal to PTB on this corpus, tested above) saves 60 JVM starts
    references, predictions = corpus
    video = "video0"
    prediction = {video: references[video][0]}  # a perfect caption
    alone = score_corpus({video: references[video]}, prediction, meteor=False)
    assert alone["CIDEr"] == 0.0  # idf from a one-video corpus is log(1/1) = 0
    assert alone["Bleu_4"] == pytest.approx(1.0)
    in_corpus = score_corpus(references, {**predictions, **prediction}, meteor=False)
    per_video = Cider().compute_score(
        tokenize_corpus({v: references[v] for v in predictions}),
        tokenize_corpus({v: [c] for v, c in {**predictions, **prediction}.items()}))[1]
    assert per_video[list(predictions).index(video)] > 1.0  # the same caption, scored within the corpus
    # score_corpus is the corpus score, not the mean of one-video scores (all 0 for CIDEr)
    one_by_one = [score_corpus({v: references[v]}, {v: c}, meteor=False)
                  for v, c in {**predictions, **prediction}.items()]
    assert in_corpus["CIDEr"] == pytest.approx(float(np.mean(per_video)), abs=1e-9)
    assert in_corpus["CIDEr"] > 0.5 and all(s["CIDEr"] == 0.0 for s in one_by_one)
    assert abs(in_corpus["Bleu_4"] - np.mean([s["Bleu_4"] for s in one_by_one])) > 0.01


def test_unknown_and_reference_less_videos_are_skipped_and_counted(corpus):
    references, predictions = corpus
    kept = {v: predictions[v] for v in list(predictions)[:10]}
    extra = {"ghost1": "a man", "ghost2": "a woman", "video_empty": "a cat"}
    with pytest.warns(UserWarning) as record:
        result = evaluate_corpus({**references, "video_empty": []}, {**kept, **extra}, meteor=False)
    messages = [str(w.message) for w in record]
    assert any("2 predictions" in m and "'ghost1'" in m for m in messages)
    assert any("1 videos whose reference list is empty" in m and "'video_empty'" in m for m in messages)
    assert (result.num_videos, result.num_unknown, result.num_without_references) == (10, 2, 1)
    assert result.scores == score_corpus(references, kept, meteor=False)
    # integer ids are compared as strings
    as_ints = score_corpus({int(v[5:]): refs for v, refs in references.items()},
                           {int(v[5:]): c for v, c in kept.items()}, meteor=False)
    assert as_ints == result.scores


def test_empty_predictions_score_zero_and_nothing_to_score_is_an_error(corpus):
    references, predictions = corpus
    scores = score_corpus(references, {v: "" for v in predictions}, meteor=False)
    assert set(scores) == set(NO_METEOR) and all(value == pytest.approx(0.0, abs=1e-6) for value in scores.values())
    with pytest.raises(LitVideoError, match="no video to score"), pytest.warns(UserWarning):
        score_corpus(references, {"ghost": "a man"}, meteor=False)


# --------------------------------------------------------------------------- files
def write_msrvtt(path: Path, references: dict[str, list[str]]) -> Path:
    """An MSR-VTT train_val_videodatainfo.json: even videos train, odd ones validate."""
    videos = [{"category": 3, "url": f"https://www.youtube.com/watch?v={vid}", "video_id": vid,
               "start time": 1.0, "end time": 11.0, "split": "train" if int(vid[5:]) % 2 == 0 else "validate",
               "id": int(vid[5:])} for vid in references]
    sentences = [{"caption": c, "video_id": vid, "sen_id": n}
                 for n, (vid, c) in enumerate((vid, c) for vid, refs in references.items() for c in refs)]
    path.write_text(json.dumps({"info": {"year": 2016}, "videos": videos, "sentences": sentences}))
    return path


def write_coco(path: Path, references: dict[str, list[str]]) -> Path:
    annotations = [{"image_id": int(vid[5:]), "id": n, "caption": c}
                   for n, (vid, c) in enumerate((vid, c) for vid, refs in references.items() for c in refs)]
    images = [{"id": int(vid[5:]), "file_name": f"{vid}.mp4"} for vid in references]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "type": "captions"}))
    return path


def write_results(path: Path, predictions: dict[str, str], key: str = "image_id") -> Path:
    path.write_text(json.dumps([{key: vid, "caption": c} for vid, c in predictions.items()]))
    return path


def test_msrvtt_and_coco_ground_truth_are_read(corpus, tmp_path):
    references, _ = corpus
    msrvtt = write_msrvtt(tmp_path / "train_val_videodatainfo.json", references)
    assert read_ground_truth(msrvtt) == references
    validate = read_ground_truth(msrvtt, split="validate")
    assert validate == {v: refs for v, refs in references.items() if int(v[5:]) % 2 == 1}
    coco = write_coco(tmp_path / "captions_val.json", references)
    assert read_ground_truth(coco) == {v[5:]: refs for v, refs in references.items()}
    with pytest.raises(DatasetLayoutError, match=r"no video has split 'val' \(found: train, validate\)"):
        read_ground_truth(msrvtt, split="val")
    with pytest.raises(DatasetLayoutError, match="a split needs an MSR-VTT file"):
        read_ground_truth(coco, split="validate")
    bad = json.loads(msrvtt.read_text())
    del bad["sentences"][5]["caption"]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(DatasetLayoutError, match=r"bad.json: sentences\[5\]: no 'caption'"):
        read_ground_truth(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"videos": []}))
    with pytest.raises(DatasetLayoutError, match="other.json: not caption annotations"):
        read_ground_truth(tmp_path / "other.json")


def test_results_duplicates_unknown_ids_and_bad_entries(corpus, tmp_path):
    references, predictions = corpus
    entries = [{"video_id": v, "caption": c} for v, c in predictions.items()]
    entries += [{"video_id": "video0", "caption": "a second caption"}, {"video_id": "video2", "caption": "x"},
                {"video_id": "nope7", "caption": "a man"}, {"video_id": "nope8", "caption": "a dog"}]
    results = tmp_path / "results.json"
    results.write_text(json.dumps(entries))
    with pytest.warns(UserWarning, match=r"2 results repeat an earlier id \(first: 'video0'\)"):
        read = read_results(results)
    assert read["video0"] == predictions["video0"] and len(read) == len(predictions) + 2
    gt = write_msrvtt(tmp_path / "gt.json", references)
    with pytest.warns(UserWarning) as record:
        stats = evaluate_files(gt, results, meteor=False)
    assert any("skipped 2 predictions" in str(w.message) and "'nope7'" in str(w.message) for w in record)
    assert stats["num_videos"] == len(predictions)
    assert {k: stats[k] for k in NO_METEOR} == score_corpus(references, predictions, meteor=False)

    for content, words in [([{"image_id": 1}], r"result 0: no 'caption'"),
                           ([{"image_id": 1, "caption": 5}], r"result 0: 'caption' is a int, not text"),
                           ([{"caption": "a man"}], r"result 0: no 'image_id' or 'video_id'"),
                           ({"image_id": 1, "caption": "a"}, "must be a list"),
                           (["a man"], "result 0: expected an object")]:
        results.write_text(json.dumps(content))
        with pytest.raises(DatasetLayoutError, match=words) as err:
            read_results(results)
        assert str(results) in str(err.value) and "\n" not in str(err.value)


def test_evaluate_captioning_command_end_to_end(corpus, tmp_path, capsys):
    references, predictions = corpus
    gt = write_msrvtt(tmp_path / "train_val_videodatainfo.json", references)
    validate = {v: c for v, c in predictions.items() if int(v[5:]) % 2 == 1}
    (tmp_path / "preds").mkdir()
    results = write_results(tmp_path / "preds" / "results.json", validate)
    assert main(["evaluate", "captioning", "--gt", str(gt), "--pred", str(results), "--split", "validate",
                 "--no-meteor"]) == 0
    out = capsys.readouterr().out
    written = tmp_path / "preds" / "caption_metrics.json"
    assert f"wrote {written}" in out and "CIDEr" in out and "videos   15" in out
    stats = json.loads(written.read_text())
    expected = score_corpus({v: references[v] for v in validate}, validate, meteor=False)
    assert list(stats) == [*NO_METEOR, "num_videos"] and stats["num_videos"] == 15
    _assert_close(stats, expected, NO_METEOR)
    assert f"{stats['CIDEr']:0.4f}" in out

    assert main(["evaluate", "captioning", "--gt", str(gt), "--pred", str(results), "--no-meteor",
                 "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "caption_metrics.json").is_file()


def _error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lit-video: error: "), captured.err
    assert "Traceback" not in captured.err
    return lines[0]


def test_bad_files_are_one_line_errors(corpus, tmp_path, capsys):
    references, predictions = corpus
    gt = write_msrvtt(tmp_path / "gt.json", references)
    results = write_results(tmp_path / "results.json", predictions)
    missing = tmp_path / "nope.json"
    line = _error_line(capsys, ["evaluate", "captioning", "--gt", str(missing), "--pred", str(results)])
    assert str(missing) in line and "no such caption annotation file" in line
    line = _error_line(capsys, ["evaluate", "captioning", "--gt", str(gt), "--pred", str(missing)])
    assert str(missing) in line and "no such caption results file" in line
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image_id": "video0", "caption": "a man"')
    line = _error_line(capsys, ["evaluate", "captioning", "--gt", str(gt), "--pred", str(broken)])
    assert str(broken) in line and "not valid JSON" in line
    line = _error_line(capsys, ["evaluate", "captioning", "--gt", str(broken), "--pred", str(results)])
    assert str(broken) in line and "not valid JSON" in line
    unrelated = write_results(tmp_path / "unrelated.json", {"other1": "a man"})
    with pytest.warns(UserWarning, match="skipped 1 predictions"):
        line = _error_line(capsys, ["evaluate", "captioning", "--gt", str(gt), "--pred", str(unrelated),
                                    "--no-meteor"])
    assert str(unrelated) in line and "no video to score" in line
