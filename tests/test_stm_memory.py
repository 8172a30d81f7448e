"""STM's bounded memory keeps every frame that holds a given mask: an object that first appears mid-video
(YouTube-VOS) has one given mask, and evicting it would leave the object to predictions of predictions."""

from __future__ import annotations

import torch

from lit_video.models import create_model, tiny_kwargs
from lit_video.models.stm import STM, STMMemory
from lit_video.tasks.vos import VideoObjectSegmentation


def tiny_stm(max_memory_frames: int | None) -> STM:
    torch.manual_seed(0)
    return create_model("stm", **{**tiny_kwargs("stm"), "max_memory_frames": max_memory_frames}).eval()


def object_masks(objects: int, seed: int, height: int = 32, width: int = 32) -> torch.Tensor:
    """Soft masks (1,K,H,W) summing to <= 1 over objects, as aggregated probabilities do."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(1, objects + 1, height, width, generator=generator) * 3).softmax(dim=1)[:, 1:]


def holds(memory: STMMemory, frame: torch.Tensor) -> bool:
    """Whether `frame` (1,3,H,W) is one of the memorized frames (sizes here need no padding)."""
    return any(torch.equal(kept.frame, frame) for kept in memory.frames)


def test_an_object_joining_a_full_memory_keeps_its_given_frame_to_the_end():
    model = tiny_stm(max_memory_frames=3)
    generator = torch.Generator().manual_seed(1)
    video = [torch.randn(1, 3, 32, 32, generator=generator) for _ in range(10)]
    join = 4  # memory is full (frames 0..3, bounded to 3) when object 2 arrives
    masks = [object_masks(1 if t < join else 2, seed=t) for t in range(9)]
    for t in range(join + 1, 9):
        masks[t][:, 1] = 0  # the model lost object 2 right after its given frame
    with torch.no_grad():
        memory = model.new_memory()
        for t in range(9):
            model.memorize(video[t], masks[t], memory)
            assert memory.num_frames == min(t + 1, 3)
            if t >= join:
                assert holds(memory, video[join]), f"the given mask of object 2 was evicted at frame {t}"
        assert holds(memory, video[0]) and holds(memory, video[8]) and not holds(memory, video[7])
        assert [frame.given for frame in memory.frames] == [True, True, False]

        # the read-out is that of a memory of exactly these frames: object 2 is read from its given mask
        expected = model.new_memory()
        for t in (0, join, 8):
            model.memorize(video[t], masks[t], expected)
        query = video[9]
        logits = model.segment(query, memory)
        torch.testing.assert_close(logits, model.segment(query, expected))
        # without its given frame, object 2 would be read from the empty predictions alone
        forgotten = model.new_memory()
        model.memorize(video[0], masks[0], forgotten)
        for t in (7, 8):
            model.memorize(video[t], masks[t], forgotten)
        assert (logits[:, 1] - model.segment(query, forgotten)[:, 1]).abs().max() > 1e-3


def test_given_frames_past_the_bound_are_all_kept_with_the_newest():
    model = tiny_stm(max_memory_frames=2)
    generator = torch.Generator().manual_seed(2)
    video = [torch.randn(1, 3, 32, 32, generator=generator) for _ in range(8)]
    arrivals = {0: 1, 2: 2, 4: 3}  # frame -> objects known from there on
    with torch.no_grad():
        memory = model.new_memory()
        objects = 0
        for t, frame in enumerate(video):
            objects = arrivals.get(t, objects)
            model.memorize(frame, object_masks(objects, seed=t), memory)
        # three given frames and the newest: over the bound of 2 rather than forgetting an object
        assert memory.num_frames == 4
        assert all(holds(memory, video[t]) for t in (0, 2, 4, 7))
        assert [frame.given for frame in memory.frames] == [True, True, True, False]


def test_whole_video_evaluation_keeps_a_mid_video_objects_given_frame_in_memory(monkeypatch):
    """The YouTube-VOS recipe's evaluation: memorize every frame, memory bounded; an object arriving when
    memory is full is still read from its given mask at the last frame."""
    torch.manual_seed(0)
    task = VideoObjectSegmentation(model="stm", model_kwargs={**tiny_kwargs("stm"), "max_memory_frames": 3},
                                   resolution=32, mem_every=1).eval()
    video = torch.randn(3, 9, 32, 32)  # (C,T,h,w)
    masks = torch.zeros(9, 32, 32, dtype=torch.int64)
    masks[0, 4:12, 4:12] = 1
    masks[5, 16:28, 16:28] = 2  # object 2 arrives at frame 5, memory already full
    memories = []
    new_memory = task.model.new_memory
    monkeypatch.setattr(task.model, "new_memory", lambda: memories.append(new_memory()) or memories[-1])
    kept_at = []
    memorize = task.model.memorize

    def spy(frame, object_masks, memory):
        memorize(frame, object_masks, memory)
        kept_at.append(holds(memory, video[None, :, 5]))

    monkeypatch.setattr(task.model, "memorize", spy)
    predicted = task.segment_video(video, masks, first_frames=torch.tensor([0, 5]))
    assert (predicted[5][masks[5] == 2] == 2).all()
    (memory,) = memories
    assert memory.num_frames == 3 and len(kept_at) == 9
    assert kept_at[5:] == [True] * 4  # from its arrival to the last frame
