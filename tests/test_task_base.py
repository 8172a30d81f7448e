"""What every task shares through `VideoTask`: each weight appears once in a `state_dict`, the compute
profile's network is built on demand rather than registered, `forward` is inference, and checkpoints
written while the profile wrapper was a submodule (every weight stored twice) still load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lit_video.compute import profiled_network
from lit_video.data.tokenizer import WordTokenizer
from lit_video.models import list_models, model_entry, tiny_kwargs
from lit_video.tasks.base import VideoTask
from lit_video.tasks.captioning import VideoCaptioning
from lit_video.tasks.classification import VideoClassifier
from lit_video.tasks.vis import VideoInstanceSegmentation
from lit_video.tasks.vos import VideoObjectSegmentation

DATA = Path(__file__).resolve().parent / "data"
CAPTIONS = ["a red circle moves left", "a blue square moves up"]


def classifier(name: str) -> VideoTask:
    return VideoClassifier(model=name, model_kwargs=tiny_kwargs(name), num_classes=3, clip_len=4,
                           resolution=32)


def vos(name: str) -> VideoTask:
    # a model that reads optical flow is given the data it needs: colours and flow
    modality = "rgb+flow" if getattr(model_entry(name), "requires_flow", False) else "rgb"
    return VideoObjectSegmentation(model=name, model_kwargs=tiny_kwargs(name), clip_len=3, resolution=32,
                                   modality=modality)


def vis(name: str) -> VideoTask:
    return VideoInstanceSegmentation(model=name, model_kwargs=tiny_kwargs(name), num_classes=3, clip_len=3,
                                     resolution=32)


def captioning(name: str) -> VideoTask:
    return VideoCaptioning(model=name, model_kwargs=tiny_kwargs(name), clip_len=4, resolution=32,
                           tokenizer=WordTokenizer.build(CAPTIONS).to_config())


BUILDERS: dict[str, Callable[[str], VideoTask]] = {"vos": vos, "vis": vis, "captioning": captioning}
# one classifier (its task never had a wrapper) and every model of the tasks that registered one
TASKS = [("c3d", classifier)] + [(name, build) for task, build in BUILDERS.items()
                                 for name in list_models(task)]


@pytest.fixture(params=TASKS, ids=[name for name, _ in TASKS])
def task(request) -> VideoTask:
    name, build = request.param
    torch.manual_seed(0)
    return build(name)


def test_each_weight_appears_once_in_the_state_dict(task):
    state = task.state_dict()
    assert not [key for key in state if key.startswith("profiled_network.")]
    pointers = [value.data_ptr() for value in state.values() if value.numel()]
    assert len(pointers) == len(set(pointers))  # no tensor stored under two keys
    assert {key.split(".")[0] for key in state} == {"model"}


def test_the_profiled_network_is_built_on_demand_around_the_task_model(task):
    network = profiled_network(task)
    # a classifier's model is already a clip -> (B, K) network; the other tasks wrap theirs, unregistered
    assert network is task.model or all(module is not network for module in task.modules())
    model_weights = {parameter.data_ptr() for parameter in task.model.parameters()}
    assert {parameter.data_ptr() for parameter in network.parameters()} == model_weights
    assert network(task.example_input_array).dim() == 2  # (B, K): what the profile's loss needs


def test_every_task_names_its_predictions_argument_alike(tmp_path, task):
    assert task.predictions_path is None
    assert "predictions_path" not in task.hparams  # a run's choice, never restored from a checkpoint
    task.predictions_path = str(tmp_path / "out" / "predictions")
    assert task.predictions_file() == str(tmp_path / "out" / "predictions") and (tmp_path / "out").is_dir()


def test_forward_is_inference():
    torch.manual_seed(0)
    video = torch.randn(2, 3, 3, 32, 32)  # (B,C,T,H,W)
    assert classifier("c3d").eval()(video[:, :, [0, 1, 2, 2]]).shape == (2, 3)
    first_masks = torch.zeros(2, 2, 32, 32, dtype=torch.bool)  # (B,K,H,W)
    first_masks[:, 0, :8, :8] = True
    first_masks[:, 1, 20:, 20:] = True
    predicted = vos("stm").eval()(video, first_masks)  # (B,T,H,W) ids
    expected_first = first_masks[:, 0].long() + 2 * first_masks[:, 1].long()
    assert predicted.shape == (2, 3, 32, 32) and torch.equal(predicted[:, 0], expected_first)
    assert not vos("stm").eval()(video).any()  # no object given: all background
    tubes = vis("query_vis").eval()(video)
    assert len(tubes) == 2 and all(masks.shape == (3, 32, 32) for _, _, masks in tubes[0])
    captioner = captioning("caption_transformer").eval()
    tokens = captioner(video[:, :, [0, 1, 2, 2]])
    assert tokens.dtype == torch.int64 and len(tokens) == 2 and tokens.shape[1] <= captioner.max_caption_len


OLD_CHECKPOINTS = [("vos", VideoObjectSegmentation), ("vis", VideoInstanceSegmentation),
                   ("captioning", VideoCaptioning)]


@pytest.mark.parametrize("name, task_class", OLD_CHECKPOINTS)
def test_a_checkpoint_with_the_duplicate_profile_weights_still_loads(name, task_class):
    """The fixtures were written by the code before the change (tests/data/make_old_checkpoints.py)."""
    path = DATA / f"old_{name}.ckpt"
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert any(key.startswith("profiled_network.model.") for key in saved)  # the old layout
    task = task_class.load_from_checkpoint(path, weights_only=True, map_location="cpu")
    loaded = task.state_dict()
    assert set(loaded) == {key for key in saved if key.startswith("model.")}  # strict loading passed too
    for key, value in loaded.items():
        assert torch.equal(value, saved[key]), key
