"""Synthetic classes differ by motion only: the first frame of a video never depends on its class. The
one table of generators covers every format, refuses what a format does not take, and grows by a
decorator."""

import subprocess
import sys

import numpy as np
import pytest

from lit_video.data.base import datamodule_names
from lit_video.data.synthetic import (
    GENERATORS,
    SynthesisOptionError,
    generator_options,
    register_generator,
    synthesize,
)
from lit_video.data.synthetic.spec import MOTIONS, SynthSpec, render_video
from lit_video.errors import LitVideoError


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


# --------------------------------------------------------------------------- the table of generators


def test_every_format_has_a_generator():
    assert sorted(GENERATORS) == datamodule_names()


def test_synthesize_refuses_unknown_formats_and_options(tmp_path):
    spec = SynthSpec(num_classes=2, videos_per_class=1, num_frames=2, size=(32, 32))
    with pytest.raises(LitVideoError, match="unknown dataset format 'nope'; known formats: davis, hmdb51, kinetics"):
        synthesize("nope", tmp_path, spec)
    with pytest.raises(SynthesisOptionError, match="valid_every applies to davis, youtube-vos, youtube-vis, not ucf101"):
        synthesize("ucf101", tmp_path, spec, valid_every=5)
    with pytest.raises(SynthesisOptionError, match="category_colours applies to youtube-vis, not davis") as info:
        synthesize("davis", tmp_path, spec, category_colours=True)
    assert (info.value.option, info.value.format_name, info.value.takers) == ("category_colours", "davis", ["youtube-vis"])
    with pytest.raises(SynthesisOptionError, match="frobnicate is not a synthesis option of any format"):
        synthesize("msvd", tmp_path, spec, frobnicate=1)
    assert not any(tmp_path.iterdir())  # refused before anything is written
    assert generator_options("youtube-vis") == ("valid_every", "category_colours")
    assert generator_options("msrvtt") == ()


def test_register_generator_adds_a_format(tmp_path):
    calls = []

    @register_generator("toy-format")
    def write_toy(out, spec, progress, shade: int | None = None):
        for _ in range(spec.num_classes * spec.videos_per_class):
            progress()
        calls.append((out, spec.num_classes, shade))

    try:
        ticks = []
        spec = SynthSpec(num_classes=2, videos_per_class=3)
        synthesize("toy-format", str(tmp_path), spec, progress=lambda: ticks.append(1), shade=None)
        synthesize("toy-format", tmp_path, spec, shade=4)
        assert calls == [(tmp_path, 2, None), (tmp_path, 2, 4)]  # None is unset: the default applies
        assert len(ticks) == 6
    finally:
        del GENERATORS["toy-format"]


def test_the_table_imports_no_generator_and_no_lightning():
    code = ("import sys; import lit_video.data.synthetic.spec; "
            "print(sorted(m for m in sys.modules if m == 'lightning' or m.startswith('lit_video.data.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['lit_video.data.synthetic', 'lit_video.data.synthetic.spec']"
