"""Synthetic classes differ by motion only: the first frame of a video never depends on its class."""

import numpy as np

from lit_video.data.synthetic import MOTIONS, SynthSpec, render_video


def test_first_frame_is_class_independent_and_motion_is_not():
    videos = [render_video(m, 6, (48, 64), np.random.default_rng(11)) for m in MOTIONS]
    for video in videos[1:]:
        assert np.array_equal(video[0], videos[0][0])
    last_frames = {v[-1].tobytes() for v in videos}
    assert len(last_frames) == len(MOTIONS)


def test_rendering_is_reproducible_and_varies_between_videos():
    spec = SynthSpec(num_classes=3, num_frames=4, size=(32, 48), seed=9)
    assert np.array_equal(spec.render(2, 5), spec.render(2, 5))
    assert not np.array_equal(spec.render(2, 5)[0], spec.render(2, 6)[0])
    assert spec.render(0, 0).shape == (4, 32, 48, 3) and spec.render(0, 0).dtype == np.uint8
