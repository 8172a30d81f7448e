"""What the model did, logged to the run's W&B logger at every validation (and test).

`ValidationMedia` reads what the task's evaluation epoch already produced (`VideoTask.evaluated_videos`:
the per-video results of every evaluated video, and the frames and predictions of `num_videos` of them,
chosen by a seeded hash of their ids: the same videos every epoch and in every run with the same seed) and
logs, under the stage's prefix (`val/`, `test/`):

- `videos`: a table with one row per evaluated video: its id, its media for the chosen videos (the others:
  none), and its results: J&F, J, F and objects (VOS), AP, AP50 and tracks (VIS), predicted caption,
  references and CIDEr-D (captioning), true and predicted class and the probability (classification). The
  chosen videos come first. VOS and VIS media are overlays drawn by `lit_video.video.overlay`, as
  `lit-video visualize --with-gt` draws them: the ground truth on the left, the prediction on the right, each
  object (or track) in its palette colour with its id or category; captioning media are the clip the model
  captioned.
- classification: `confusion_matrix` (W&B's confusion matrix chart over every evaluated video),
  `per_class` (videos, correct and accuracy of each class) and `top_confused` (the most frequent
  true -> predicted mistakes).

Nothing runs unless the trainer has a W&B logger: the tasks keep no frames and compute no per-video
results. `lit-video fit|validate|test` add this callback with `--wandb.media_videos N` (default 4; 0 logs
none of the above) and `--wandb.media_seed`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from lit_video.errors import LitVideoError
from lit_video.tasks.base import EvaluatedVideos, VideoTask

TOP_CONFUSED = 10  # mistakes listed in `top_confused`


def render_media(media: dict[str, Any]) -> np.ndarray:
    """A chosen video's frames as logged -> uint8 (T,H,W,3): a segmentation's overlays (the ground truth left
    of the prediction when there is one), or the frames as they are.

    Args:
        media: what `VideoTask.keep_media` kept: "frames" and, for a segmentation, "predicted" and "truth"
            label maps with their texts.
    """
    from lit_video.video.overlay import overlay_labels, side_by_side

    frames = media["frames"]
    if media.get("predicted") is None:
        return frames
    drawn = overlay_labels(frames, media["predicted"], names=media.get("predicted_names") or None)
    if media.get("truth") is not None:
        drawn = side_by_side(overlay_labels(frames, media["truth"], names=media.get("truth_names") or None), drawn)
    return drawn


def confusion_counts(labels: list[int], predicted: list[int], num_classes: int) -> np.ndarray:
    """(K,K) int64: entry [i, j] counts the videos of class i predicted as class j."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
    return counts


class ValidationMedia(Callback):
    """Logs the per-video results and media of each validation and test epoch to the trainer's W&B logger.

    Args:
        num_videos: videos whose media are logged; 0 logs nothing (and the tasks keep nothing).
        seed: chooses the videos (the same ids and seed choose the same videos).
    """

    def __init__(self, num_videos: int = 4, seed: int = 0):
        if isinstance(num_videos, bool) or not isinstance(num_videos, int) or num_videos < 0:
            raise LitVideoError(f"wandb.media_videos must be an integer >= 0 (0 logs no media), got {num_videos!r}")
        self.num_videos, self.seed = num_videos, seed

    @staticmethod
    def wandb_logger(trainer: Trainer) -> WandbLogger | None:
        return next((logger for logger in trainer.loggers if isinstance(logger, WandbLogger)), None)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if isinstance(pl_module, VideoTask):  # the task keeps media only when they will be logged
            wanted = self.num_videos if self.wandb_logger(trainer) is not None else 0
            # rank 0 logs; every rank must take part in the epoch's gathers whatever loggers it was given (a
            # sweep gives rank 0 alone a W&B logger), or rank 0 waits for the others forever
            pl_module.media_videos = trainer.strategy.broadcast(wanted, src=0)
            pl_module.media_seed = self.seed

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "val")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test")

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        evaluated = getattr(pl_module, "evaluated_videos", None)
        if evaluated is None or evaluated.stage != stage:
            return
        pl_module.evaluated_videos = None  # the frames are not kept past the epoch
        logger = self.wandb_logger(trainer)
        if logger is None or not trainer.is_global_zero:
            return
        with tempfile.TemporaryDirectory(prefix="lit-video-media-") as folder:
            logged = {f"{stage}/videos": videos_table(evaluated, Path(folder))}
            if evaluated.class_names is not None:
                logged.update({f"{stage}/{key}": value for key, value in classification_charts(evaluated).items()})
            logger.log_metrics(logged, step=trainer.global_step)  # W&B copies the media files as it logs


def videos_table(evaluated: EvaluatedVideos, folder: Path):
    """The `videos` table: a row per evaluated video, the chosen ones first with their media as MP4s
    written to `folder`.

    Args:
        evaluated: the epoch's results.
        folder: where the MP4s are written (W&B copies them when the table is logged).
    """
    import wandb

    from lit_video.video.overlay import write_mp4

    columns = list(dict.fromkeys(column for row in evaluated.rows.values() for column in row))
    has_media = bool(evaluated.media)
    rest = sorted((video_id for video_id in evaluated.rows if video_id not in evaluated.media), key=str)
    table = wandb.Table(columns=["video", *(["media"] if has_media else []), *columns])
    for number, video_id in enumerate([*evaluated.media, *rest]):
        row = evaluated.rows.get(video_id, {})
        cells: list[Any] = [str(video_id)]
        if has_media:
            media = evaluated.media.get(video_id)
            clip = None
            if media is not None:
                path = folder / f"{number}.mp4"
                write_mp4(path, render_media(media), media["fps"])
                clip = wandb.Video(str(path), format="mp4", caption=str(video_id))
            cells.append(clip)
        cells += [_cell(row.get(column), evaluated.class_names, column) for column in columns]
        table.add_data(*cells)
    return table


def _cell(value: Any, class_names: list[str] | None, column: str) -> Any:
    """A table cell: class indices as their names, lists as lines, numpy numbers as Python ones."""
    if class_names is not None and column in ("label", "predicted") and isinstance(value, int):
        return class_names[value] if 0 <= value < len(class_names) else str(value)
    if isinstance(value, list | tuple):
        return "\n".join(str(item) for item in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def classification_charts(evaluated: EvaluatedVideos) -> dict[str, Any]:
    """The confusion matrix (W&B's chart), per-class accuracy and the most frequent mistakes of a classification
    epoch, over the videos whose class is known."""
    import wandb

    names = evaluated.class_names or []
    known = [row for row in evaluated.rows.values() if 0 <= row["label"] < len(names)]
    labels, predicted = [row["label"] for row in known], [row["predicted"] for row in known]
    counts = confusion_counts(labels, predicted, len(names))
    per_class = wandb.Table(columns=["class", "videos", "correct", "accuracy"])
    for k, name in enumerate(names):
        videos, correct = int(counts[k].sum()), int(counts[k, k])
        per_class.add_data(name, videos, correct, correct / videos if videos else float("nan"))
    mistakes = [(int(counts[i, j]), i, j) for i in range(len(names)) for j in range(len(names))
                if i != j and counts[i, j]]
    top = wandb.Table(columns=["true", "predicted", "videos", "share of the class"])
    for count, i, j in sorted(mistakes, key=lambda m: (-m[0], m[1], m[2]))[:TOP_CONFUSED]:
        top.add_data(names[i], names[j], count, count / int(counts[i].sum()))
    charts = {"per_class": per_class, "top_confused": top}
    if known:
        charts["confusion_matrix"] = wandb.plot.confusion_matrix(y_true=labels, preds=predicted, class_names=names,
                                                                 title="Confusion matrix (videos)")
    return charts
