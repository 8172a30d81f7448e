"""The captioning LightningModule: next-token training, corpus-level scores, a learning test on held-out
synthetic MSR-VTT videos (CIDEr-D >= 1, beam search >= greedy, far above captions that ignore the video),
predictions that `lit-video evaluate captioning` reads back with the in-loop scores, the vocabulary in
the checkpoint, the CLI links and a sweep that records compute per trial."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml

from lit_video.cli import main
from lit_video.data import keys
from lit_video.data.formats.msrvtt import MSRVTTDataModule
from lit_video.data.synthetic.captions import COLOURS, MOTIONS, SHAPES, CaptionSynthSpec, write_msrvtt
from lit_video.data.tokenizer import WordTokenizer
from lit_video.errors import LitVideoError
from lit_video.metrics.captions import score_corpus
from lit_video.models import tiny_kwargs
from lit_video.sweep.spec import SweepSpec
from lit_video.sweep.study import run_sweep
from lit_video.tasks.captioning import VideoCaptioning
from lit_video.training import run_cli

# the learning test's CIDEr-D figures (README) were measured on two threads
pytestmark = pytest.mark.usefixtures("two_torch_threads")

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = REPO / "experiments" / "synthetic" / "caption_tiny.yaml"
# 500 videos: 300 train, 100 validate (held out while training), 100 test. Fewer training videos or steps
# still give CIDEr-D > 1 (colour and size come first), but the direction of motion is learned last: with 240
# training videos it stays at chance after 450 steps and reaches 0.85 on held-out videos here (~570 steps).
LEARNING_SPEC = CaptionSynthSpec(num_videos=500, num_frames=16, size=(64, 64), seed=0)
LEARNING_BUDGET = ("--trainer.max_epochs", "30", "--trainer.check_val_every_n_epoch", "30")


def tiny_task(**kwargs) -> VideoCaptioning:
    torch.manual_seed(0)
    tokenizer = WordTokenizer.build(["a red circle moves left", "a blue square moves up"])
    return VideoCaptioning(model="caption_transformer", model_kwargs=tiny_kwargs("caption_transformer"),
                           tokenizer=tokenizer.to_config(), resolution=32, **kwargs)


def test_training_predicts_each_next_token_and_ignores_padding():
    task = tiny_task(label_smoothing=0.0).eval()  # no dropout: the two passes below must agree
    tokenizer = task.tokenizer
    tokens = torch.tensor([tokenizer.encode("a red circle moves left", 8),
                           tokenizer.encode("a blue square", 8) + [tokenizer.pad_id] * 2])  # (B,L)
    video = torch.randn(2, 3, 4, 32, 32)  # (B,C,T,H,W)
    loss = task.training_step({keys.VIDEO: video, keys.CAPTION_TOKENS: tokens}, 0)
    logits = task.model(video, tokens[:, :-1])  # (B,L-1,V)
    targets = tokens[:, 1:]
    real = targets != tokenizer.pad_id
    expected = torch.nn.functional.cross_entropy(logits[real], targets[real])  # padding plays no part
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in task.model.parameters() if p.requires_grad)


def test_a_task_needs_the_datamodule_tokenizer_and_sane_decoding_settings():
    with pytest.raises(LitVideoError, match="model.init_args.tokenizer is missing"):
        VideoCaptioning(model="caption_transformer")
    with pytest.raises(LitVideoError, match="beam_size must be >= 1"):
        tiny_task(beam_size=0)
    with pytest.raises(LitVideoError, match="'stm' is a vos model, not a captioning model"):
        VideoCaptioning(model="stm", tokenizer=WordTokenizer.build(["a b"]).to_config())


def test_evaluation_captions_the_middle_view_within_max_caption_len():
    task = tiny_task(beam_size=2, max_caption_len=6).eval()
    videos = torch.randn(3, 3, 3, 4, 32, 32)  # (B,V,C,T,H,W): three views of each video
    with pytest.warns(UserWarning, match="the middle one is used"):
        captions = task.caption(videos)
    assert captions == task.caption(videos[:, 1])
    assert all(len(c.split()) <= 6 for c in captions)  # at most max_caption_len tokens, EOS included


def attributes(caption: str) -> tuple[str | None, ...]:
    """(colour, shape, direction) named in a caption (None when absent)."""
    words = set(re.findall(r"[a-z]+", caption.lower()))
    found = [next((w for w in names if w in words), None) for names in (COLOURS, SHAPES)]
    direction = next((d for d in MOTIONS if d in words or f"{d}ward" in words), None)
    return (*found, "up" if direction is None and ("rising" in words) else
            "down" if direction is None and ("falling" in words) else direction)


@pytest.fixture(scope="module")
def learning_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("msrvtt_learning")
    write_msrvtt(root, LEARNING_SPEC)
    return root


@pytest.fixture(scope="module")
def trained(learning_root, tmp_path_factory):
    """The tiny recipe trained on the learning copy -> the CLI (model, DataModule, Trainer)."""
    cli = run_cli(["--config", str(EXPERIMENT), "--data.init_args.root", str(learning_root),
                   "--data.init_args.num_workers", "0", "--trainer.enable_progress_bar", "false",
                   "--trainer.enable_model_summary", "false", "--trainer.logger", "false",
                   "--trainer.default_root_dir", str(tmp_path_factory.mktemp("caption_run")), *LEARNING_BUDGET],
                  run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def test_training_reaches_cider_1_on_held_out_videos_with_beam_search_and_greedy_decoding(trained):
    """Held-out synthetic MSR-VTT videos after a CI-sized budget: CIDEr-D >= 1 (pycocoevalcap's scale) with beam
    search and with greedy decoding, the two within 0.25 of each other, captions far better than any that ignore the video, and the
    colour, shape and direction they name mostly right."""
    model, datamodule, trainer = trained.model, trained.datamodule, trained.trainer
    scores = {}
    for beam_size in (3, 1):
        model.beam_size = beam_size
        (scores["val", beam_size],) = trainer.validate(model, datamodule=datamodule, verbose=False)
        (scores["test", beam_size],) = trainer.test(model, datamodule=datamodule, verbose=False)
    model.beam_size = 3
    cider = {key: result[f"{key[0]}/CIDEr"] for key, result in scores.items()}
    references = datamodule.references("val")
    # the best a video-blind captioner can do: the most frequent training caption, for every video
    blind = Counter(c for refs in datamodule.references("train").values() for c in refs).most_common(1)[0][0]
    blind_cider = score_corpus(references, dict.fromkeys(references, blind), meteor=False)["CIDEr"]
    print(f"\nheld-out CIDEr-D (val, test): beam 3 {cider['val', 3]:.3f}, {cider['test', 3]:.3f}; greedy "
          f"{cider['val', 1]:.3f}, {cider['test', 1]:.3f}; video-blind (val) {blind_cider:.3f}")
    assert min(cider.values()) >= 1.0
    assert cider["val", 3] > blind_cider + 0.8
    # Beam search finds likelier captions, which is not the same as better CIDEr-D: which decoding scores higher
    # depends on the training run. Two runs of this recipe that differ only in their random draws gave beam 3
    # 2.68 / 2.66 (test / val) with greedy 2.64 / 2.66, and beam 3 2.67 / 2.68 with greedy 2.82 / 2.84. What
    # holds in both: beam search keeps the captions about as good as greedy decoding does.
    for split in ("val", "test"):
        assert abs(cider[split, 3] - cider[split, 1]) <= 0.25, split
    # which attributes the captions get right, against the generator's truth
    model.eval()
    loader = datamodule.val_dataloader()
    right, total = Counter(), 0
    for batch in loader:
        for video_id, caption in zip(batch[keys.VIDEO_ID], model.caption(batch[keys.VIDEO]), strict=True):
            truth = LEARNING_SPEC.video(int(video_id.removeprefix("video")))
            colour, shape, direction = attributes(caption)
            right.update(colour=colour == truth.colour, shape=shape == truth.shape,
                         direction=direction == truth.motion)
            total += 1
    accuracy = {name: right[name] / total for name in ("colour", "shape", "direction")}
    print(f"attribute accuracy on {total} held-out videos: {accuracy}")
    # chance: 1/4 of colours and directions, 1/3 of shapes (small triangles and squares are a few pixels apart)
    assert accuracy["colour"] > 0.9 and accuracy["direction"] > 0.6 and accuracy["shape"] > 0.4


def test_predictions_read_back_by_evaluate_captioning_give_the_in_loop_scores(trained, learning_root, tmp_path,
                                                                               capsys):
    model, datamodule, trainer = trained.model, trained.datamodule, trained.trainer
    (tested,) = trainer.test(model, datamodule=datamodule, verbose=False)
    path = tmp_path / "results.json"
    model.predictions_path = str(path)
    trainer.predict(model, datamodule=datamodule, return_predictions=False)
    results = json.loads(path.read_text())
    assert {r["image_id"] for r in results} == set(datamodule.references("test"))
    assert all(set(r) == {"image_id", "video_id", "caption"} and r["caption"] for r in results)
    out = tmp_path / "eval"
    assert main(["evaluate", "captioning", "--gt", str(learning_root / "test_videodatainfo.json"),
                 "--pred", str(path), "--out", str(out), "--no-meteor"]) == 0
    stats = json.loads((out / "caption_metrics.json").read_text())
    assert stats["CIDEr"] > 0.5  # not a vacuous 0 == 0
    for name in ("Bleu_1", "Bleu_4", "ROUGE_L", "CIDEr"):
        assert stats[name] == pytest.approx(tested[f"test/{name}"], abs=1e-6), name
    assert f"{stats['CIDEr']:.3f}" in capsys.readouterr().out


def test_the_checkpoint_carries_the_vocabulary(trained, tmp_path):
    model, datamodule, trainer = trained.model, trained.datamodule, trained.trainer
    path = tmp_path / "captioner.ckpt"
    trainer.save_checkpoint(path)
    restored = VideoCaptioning.load_from_checkpoint(path, map_location="cpu").eval()  # no DataModule needed
    assert restored.tokenizer.to_config() == datamodule.tokenizer.to_config()
    batch = next(iter(datamodule.test_dataloader()))
    model.eval()
    assert restored.caption(batch[keys.VIDEO]) == model.caption(batch[keys.VIDEO])


def test_the_captioning_datamodule_and_task_link_through_the_cli(msrvtt_root):
    cli = run_cli(["--config", str(EXPERIMENT), "--data.init_args.root", str(msrvtt_root),
                   "--data.init_args.clip_len", "4", "--data.init_args.resolution", "48",
                   "--data.init_args.min_word_count", "2"], run=False)
    assert isinstance(cli.datamodule, MSRVTTDataModule)
    assert cli.model.example_input_array.shape == (1, 3, 4, 48, 48)  # clip_len and resolution linked
    assert cli.model.hparams.tokenizer == cli.datamodule.tokenizer_config  # the vocabulary, linked
    assert cli.model.model.vocab_size == cli.datamodule.vocab_size


def test_a_captioning_sweep_records_scores_and_the_compute_of_each_frame_count(tmp_path, msrvtt_root, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    spec = {"experiment": str(EXPERIMENT), "study_name": "captions", "out_dir": str(tmp_path / "out"),
            "overrides": {"data.init_args.root": str(msrvtt_root), "data.init_args.num_workers": 0,
                          "model.init_args.model_kwargs": tiny_kwargs("caption_transformer")},
            "search_space": {"data.init_args.clip_len": {"type": "categorical", "choices": [2, 4]},
                             "model.init_args.beam_size": {"type": "categorical", "choices": [1, 2]}},
            "objectives": [{"metric": "val/CIDEr_best", "direction": "maximize"}],
            "sampler": "grid", "pruner": "none",
            "budget": {"max_epochs": 1, "check_val_every_n_epoch": 1, "limit_train_batches": 1,
                       "limit_val_batches": 2, "logger": False, "callbacks": [],
                       "enable_checkpointing": False, "enable_progress_bar": False}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    study = run_sweep(SweepSpec.load(tmp_path / "spec.yaml"))
    trials = {(t.params["data.init_args.clip_len"], t.params["model.init_args.beam_size"]): t for t in study.trials}
    assert len(trials) == 4
    for trial in trials.values():
        assert trial.state.name == "COMPLETE" and trial.value >= 0, trial.user_attrs.get("failure")
        assert trial.user_attrs["compute/params"] > 0 and trial.user_attrs["compute/train_clips_per_s"] > 0
    # twice the frames: about twice the encoder's compute (the decoder's share does not grow)
    ratio = trials[(4, 1)].user_attrs["compute/gflops"] / trials[(2, 1)].user_attrs["compute/gflops"]
    assert 1.3 < ratio < 2.5, ratio


def test_predict_writes_a_caption_for_every_test_video(msrvtt_root, tmp_path):
    datamodule = MSRVTTDataModule(root=str(msrvtt_root), num_workers=0, resolution=32, clip_len=4,
                                  tokenizer=None)
    task = VideoCaptioning(model="caption_transformer", model_kwargs=tiny_kwargs("caption_transformer"),
                           tokenizer=datamodule.tokenizer_config, resolution=32, clip_len=4, beam_size=1,
                           predictions_path=str(tmp_path / "r.json"))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=str(tmp_path))
    trainer.predict(task, datamodule=datamodule, return_predictions=False)
    results = json.loads((tmp_path / "r.json").read_text())
    assert {r["image_id"] for r in results} == {r.video_id for r in datamodule.records("test")}
