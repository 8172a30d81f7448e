import numpy as np
import pytest

from lit_video.video.sampling import ClipSampler


def test_train_clip_is_strided_and_inside_the_video():
    sampler = ClipSampler(clip_len=8, stride=2)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(200):
        clip = sampler.train_indices(100, rng=rng)
        assert clip.shape == (8,) and clip.dtype == np.int64
        assert np.all(np.diff(clip) == 2) and clip[0] >= 0 and clip[-1] <= 99
        starts.add(int(clip[0]))
    assert min(starts) == 0 and max(starts) >= 80  # every start in [0, 85] is reachable
    assert sampler.span() == 15


@pytest.mark.parametrize("num_frames, target_fps, fps", [(6, None, None), (7, None, None), (12, 15.0, 30.0)])
def test_train_clips_start_anywhere_up_to_the_last_start_that_fits(num_frames, target_fps, fps):
    sampler = ClipSampler(clip_len=3, stride=2, target_fps=target_fps)  # spans 5 frames (9 at half the rate)
    last = int(num_frames - sampler.span(fps))
    rng = np.random.default_rng(0)
    clips = np.stack([sampler.train_indices(num_frames, fps, rng) for _ in range(300)])
    assert set(clips[:, 0].tolist()) == set(range(last + 1))
    assert clips.max() == num_frames - 1  # the last frame is reachable, and never overrun
    counts = np.bincount(clips[:, 0])
    assert counts.min() > 0.6 * counts.mean()  # uniform over the starts


def test_short_video_is_padded_not_dropped():
    clip = ClipSampler(clip_len=8, stride=2).train_indices(5, rng=np.random.default_rng(0))
    assert clip.tolist() == [0, 2, 4, 4, 4, 4, 4, 4]
    looped = ClipSampler(clip_len=8, stride=2, pad_mode="loop").train_indices(5, rng=np.random.default_rng(0))
    assert looped.tolist() == [0, 2, 4, 1, 3, 0, 2, 4]
    views = ClipSampler(clip_len=4, stride=1, num_clips=3).eval_indices(2)
    assert views.tolist() == [[0, 1, 1, 1]] * 3


def test_eval_views_are_uniform_and_cover_the_video():
    views = ClipSampler(clip_len=4, stride=2, num_clips=5).eval_indices(107)
    assert views.shape == (5, 4)
    assert views[0, 0] == 0 and views[-1, -1] == 106
    starts = views[:, 0]
    assert np.all(np.diff(starts) >= 24) and np.ptp(np.diff(starts)) <= 1
    single = ClipSampler(clip_len=4, stride=2).eval_indices(107)
    assert single.tolist() == [[50, 52, 54, 56]]  # centred
    assert ClipSampler(clip_len=4, stride=2, num_clips=5).eval_indices(107).tolist() == views.tolist()  # deterministic


def test_target_fps_resamples_the_stride():
    sampler = ClipSampler(clip_len=4, stride=1, target_fps=10)
    assert sampler.step(30.0) == 3.0
    assert sampler.eval_indices(300, fps=30.0)[0].tolist() == [145, 148, 151, 154]  # centred: (300 - 10) / 2
    # 25 -> 10 fps: fractional steps floor to source frames
    assert ClipSampler(clip_len=5, stride=1, target_fps=10).train_indices(5000, 25.0, np.random.default_rng(0)).shape == (5,)
    half = ClipSampler(clip_len=5, stride=1, target_fps=10).eval_indices(11, 25.0)[0]
    assert half.tolist() == [0, 2, 5, 7, 10]


@pytest.mark.parametrize("bad", [dict(clip_len=0), dict(clip_len=4, stride=0), dict(clip_len=4, num_clips=0),
                                 dict(clip_len=4, pad_mode="zeros"), dict(clip_len=4, target_fps=-1),
                                 dict(clip_len=True), dict(clip_len=4, stride_jitter=-1),
                                 dict(clip_len=4, stride_jitter=True)])
def test_invalid_arguments_are_rejected(bad):
    with pytest.raises(ValueError):
        ClipSampler(**bad)


def test_uniform_sampling_takes_one_frame_from_each_segment_of_the_whole_video():
    sampler = ClipSampler(clip_len=4, mode="uniform", num_clips=2)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        clip = sampler.train_indices(100, rng=rng)
        assert clip.shape == (4,) and clip.dtype == np.int64
        assert np.all(clip // 25 == np.arange(4))  # frame k comes from segment k of 25 frames
        seen.update(clip.tolist())
    assert min(seen) == 0 and max(seen) == 99  # every frame of the video is reachable
    # evaluation views: the same offset within every segment, (v + 0.5) / num_clips of it
    assert sampler.eval_indices(100).tolist() == [[6, 31, 56, 81], [18, 43, 68, 93]]
    assert ClipSampler(clip_len=4, mode="uniform").eval_indices(100).tolist() == [[12, 37, 62, 87]]
    # fewer frames than segments: frames repeat, in order, never past the end
    assert ClipSampler(clip_len=4, mode="uniform").eval_indices(3).tolist() == [[0, 1, 1, 2]]
    with pytest.raises(ValueError, match="frame sampling mode"):
        ClipSampler(clip_len=4, mode="segments")


def test_stride_jitter_draws_each_training_clips_stride_and_leaves_evaluation_alone():
    sampler = ClipSampler(clip_len=3, stride=2, stride_jitter=2)  # strides 1..4 (never below 1)
    rng = np.random.default_rng(0)
    strides = set()
    for _ in range(200):
        clip = sampler.train_indices(20, rng=rng)
        steps = set(np.diff(clip).tolist())
        assert len(steps) == 1 and clip[-1] <= 19  # one stride per clip, inside the video
        strides |= steps
    assert strides == {1, 2, 3, 4}
    assert sampler.eval_indices(20).tolist() == ClipSampler(clip_len=3, stride=2).eval_indices(20).tolist()
    # without jitter the draws are those of a plain sampler: no random number is spent on the stride
    plain, jittered = np.random.default_rng(1), np.random.default_rng(1)
    for _ in range(20):
        assert np.array_equal(ClipSampler(clip_len=3, stride=2).train_indices(20, rng=plain),
                              ClipSampler(clip_len=3, stride=2, stride_jitter=0).train_indices(20, rng=jittered))
