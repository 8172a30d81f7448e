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
