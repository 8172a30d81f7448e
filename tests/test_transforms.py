import pytest
import torch

from lit_video.video.transforms import KINETICS_MEAN, KINETICS_STD, ClipTransform


def _clip(t=4, h=90, w=120):
    return torch.randint(0, 256, (t, h, w, 3), dtype=torch.uint8)


def test_train_output_layout_and_normalisation():
    transform = ClipTransform(112, train=True)
    frames = torch.full((4, 90, 120, 3), 255, dtype=torch.uint8)
    video = transform(frames)
    assert video.dtype == torch.float32 and video.shape == (3, 4, 112, 112)
    expected = (1 - torch.tensor(KINETICS_MEAN)) / torch.tensor(KINETICS_STD)
    assert torch.allclose(video[:, 0, 0, 0], expected, atol=1e-5)
    assert transform.short_side == 128


def test_eval_crops():
    video = ClipTransform((96, 128), train=False)(_clip())
    assert video.shape == (3, 4, 96, 128)
    three = ClipTransform(64, train=False, num_crops=3, short_side=64)(_clip())
    assert three.shape == (3, 3, 4, 64, 64)
    assert not torch.equal(three[0], three[2])  # left and right crops differ


def test_masks_follow_the_same_random_crop_and_flip():
    torch.manual_seed(0)
    frames = torch.zeros((2, 64, 64, 3), dtype=torch.uint8)
    masks = torch.zeros((2, 64, 64), dtype=torch.int64)
    frames[:, :, :20] = 255  # a white band on the left, labelled object 1
    masks[:, :, :20] = 1
    masks[:, 63, 63] = 255  # void stays a label (nearest-neighbour), never averaged with neighbours
    transform = ClipTransform(48, train=True, short_side=64)
    flipped_seen = False
    for _ in range(20):
        video, out_masks = transform(frames, masks)
        assert out_masks.dtype == torch.int64 and out_masks.shape == (2, 48, 48)
        assert set(out_masks.unique().tolist()) <= {0, 1, 255}
        white = video[0] > 0  # (T,h,w): where the frame is bright
        assert torch.equal(white, out_masks == 1)
        flipped_seen |= bool((out_masks[0, :, -1] == 1).any())
    assert flipped_seen


def test_cropping_before_resizing_matches_resize_then_crop():
    """The crop box is cut from the source frame, then resized: same image as resizing the whole
    frame to the short side and cropping, up to resampling at the border."""
    from torchvision.transforms.v2 import functional as F

    yy, xx = torch.meshgrid(torch.arange(90.0), torch.arange(120.0), indexing="ij")
    image = torch.stack([xx * 2, yy * 2.5, (xx + yy)], dim=-1).clamp(0, 255).to(torch.uint8)  # smooth (H,W,C)
    frames = image.expand(2, -1, -1, -1)
    transform = ClipTransform(64, train=False, short_side=80, mean=(0, 0, 0), std=(1, 1, 1), num_crops=3)
    ours = transform(frames) * 255  # (3,C,T,64,64)
    reference = F.resize(frames.permute(0, 3, 1, 2).float(), [80, 106], antialias=True)  # (T,C,80,106)
    for crop, left in zip(ours, (0, 21, 42)):
        expected = reference[..., 8:72, left:left + 64].permute(1, 0, 2, 3)
        assert (crop - expected).abs().mean() < 1.5


def test_several_clips_at_once_keep_their_order():
    clips = torch.stack([torch.full((2, 40, 50, 3), v, dtype=torch.uint8) for v in (0, 100, 200)])
    out = ClipTransform(32, train=False, num_crops=3, mean=(0, 0, 0), std=(1, 1, 1))(clips)
    assert out.shape == (9, 3, 2, 32, 32)
    assert torch.allclose(out[:, 0, 0, 0, 0], torch.tensor([0, 0, 0, 100, 100, 100, 200, 200, 200]) / 255)


def test_uint8_output_normalized_later_equals_float_output():
    torch.manual_seed(0)
    clip = _clip()
    float_clip = ClipTransform(48, train=False, num_crops=3)(clip)
    raw = ClipTransform(48, train=False, num_crops=3, normalize=False)(clip)
    assert raw.dtype == torch.uint8 and raw.shape == float_clip.shape
    from lit_video.video.transforms import normalize_clips

    assert torch.allclose(normalize_clips(raw[None]), float_clip[None], atol=1e-5)  # (B, V, C, T, H, W)


def test_drawn_views_replay_the_transform_elsewhere():
    """The draws made in a worker (`draw_views`), applied where the clip is decoded, give the clip and masks the
    transform gives when it draws for itself."""
    transform = ClipTransform(48, train=True, short_side_range=(52, 80))
    clip, masks = _clip(8, 120, 160), torch.randint(0, 3, (8, 120, 160))
    torch.manual_seed(5)
    expected_video, expected_masks = transform(clip, masks)
    torch.manual_seed(5)
    views = transform.draw_views(1, 120, 160)  # (1, 5): top, left, height, width, flipped
    video, out_masks = transform(clip, masks, views=views)
    assert torch.equal(video, expected_video) and torch.equal(out_masks, expected_masks)
    torch.manual_seed(6)
    assert not torch.equal(transform(clip, views=transform.draw_views(1, 120, 160)), expected_video)
    with pytest.raises(ValueError, match=r"views: expected \(1, 5\) draws"):
        transform(clip, views=torch.zeros((3, 5), dtype=torch.int64))
