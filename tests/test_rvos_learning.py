"""One-shot RVOS learns to track held-out synthetic DAVIS sequences within a CI budget, scored by the task's own
validation (`val/JF`) against copying the first mask. The data: 384 training and 16 held-out sequences of 24 frames at 64x80 (about 2.6 px of motion per
frame), RGB only; each fit is its tiny recipe with the frames at 64 px.

Measured here (2 threads): one-shot 0.034 untrained, 0.403 after 240 steps; copying the first mask 0.099. Before
the previous mask was carried by local attention (and entered the readout as a prior, and the first mask its own
frame's step) similar fits reached 0.07-0.17. Zero-shot RVOS has no test: it does not learn at this budget (see
experiments/synthetic/vos_rvos_unsupervised_tiny.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_vos_motion_learning import fit_and_validate, held_out_copy_jf

from lit_video.data.synthetic.vos import VosSynthSpec, write_davis

# 384 training and 16 held-out sequences
SPEC = VosSynthSpec(num_videos=400, num_frames=24, size=(64, 80), seed=0, valid_every=25)
ONE_SHOT_MARGIN = 0.3


@pytest.fixture(scope="module")
def rvos_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("davis_rvos")
    write_davis(root, SPEC)
    return root


@pytest.fixture(scope="module")
def copied_jf(rvos_root) -> float:
    return held_out_copy_jf(rvos_root)


def test_one_shot_rvos_beats_copying_the_first_mask(two_torch_threads, rvos_root, copied_jf, tmp_path):
    before, after = fit_and_validate("vos_rvos_tiny.yaml", rvos_root, tmp_path)
    print(f"\nheld-out J&F: one-shot RVOS {before:.3f} untrained, {after:.3f} trained; first mask copied "
          f"{copied_jf:.3f}")
    assert after >= copied_jf + ONE_SHOT_MARGIN
