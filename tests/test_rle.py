"""YouTube-VIS segmentations <-> RLE (`lit_video.data.rle`): every form reads as pycocotools reads it,
masks round-trip, the uncompressed runs are pycocotools' own, and a segmentation that pycocotools would
read into a wrong mask is a ValueError naming what is wrong."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from conftest import ALLOWED_IN_CI
from pycocotools import mask as mask_utils

from lit_video.data.rle import (
    _compressed_runs,
    decode_segmentation,
    decode_tube,
    encode_tube,
    segmentation_to_rle,
    uncompressed_rle,
)

HEIGHT, WIDTH = 30, 40
POLYGON = [[5.0, 4.0, 30.0, 6.0, 22.0, 25.0, 8.0, 20.0], [33.0, 2.0, 38.0, 2.0, 36.0, 9.0]]  # two parts


def compressed(mask: np.ndarray) -> dict:
    """pycocotools' encoding, counts as bytes (as `encode` returns them)."""
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def test_uncompressed_rle_matches_pycocotools_encoding():
    rng = np.random.default_rng(0)
    masks = [rng.random((7, 5)) < 0.4 for _ in range(20)]
    # empty, full, first pixel set
    masks += [np.zeros((4, 6), bool), np.ones((4, 6), bool), np.eye(5, dtype=bool)]
    for mask in masks:
        rle = uncompressed_rle(mask)
        assert sum(rle["counts"]) == mask.size and rle["size"] == list(mask.shape)
        assert mask_utils.frPyObjects(rle, *mask.shape)["counts"] == compressed(mask)["counts"]
        assert np.array_equal(mask_utils.decode(mask_utils.frPyObjects(rle, *mask.shape)), mask)


def test_every_form_reads_as_pycocotools_reads_it():
    # the official conversion of polygons: pycocotools' frPyObjects, parts merged
    official = mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(POLYGON, HEIGHT, WIDTH)))
    assert official.sum() > 100
    rle = compressed(official)
    forms = [POLYGON, uncompressed_rle(official), rle, {"size": rle["size"], "counts": rle["counts"].decode()}]
    for form in forms:
        assert np.array_equal(mask_utils.decode(segmentation_to_rle(form, HEIGHT, WIDTH)), official)
        assert np.array_equal(decode_segmentation(form, HEIGHT, WIDTH), official.astype(bool))
    for empty in (None, [], {}):  # null, and the other empty values the official `if seg:` skips
        assert segmentation_to_rle(empty, HEIGHT, WIDTH) is None
        assert decode_segmentation(empty, HEIGHT, WIDTH) is None
    tube = decode_tube([*forms, None, []], HEIGHT, WIDTH)
    assert tube.dtype == np.uint8
    assert np.array_equal(tube, np.stack([official] * len(forms) + [np.zeros_like(official)] * 2))


def test_encode_tube_round_trips_through_pycocotools():
    rng = np.random.default_rng(1)
    masks = rng.random((3, 12, 17)) < 0.4
    masks[1] = False
    tube = encode_tube(masks)
    json.dumps(tube)  # JSON-ready: str counts
    assert all(np.array_equal(mask_utils.decode(rle), m) for rle, m in zip(tube, masks))
    assert tube[1] is not None and encode_tube(masks, null_empty=True)[1] is None
    assert np.array_equal(decode_tube(tube, 12, 17), masks)
    assert encode_tube(torch.from_numpy(masks)) == tube  # torch masks too


def test_compressed_runs_are_those_pycocotools_wrote():
    """The string is read as pycocotools reads it: every run length, through multi-character and negative
    differences (large frames, long runs, many short ones)."""
    rng = np.random.default_rng(2)
    masks = [rng.random((13, 11)) < p for p in (0.0, 0.03, 0.5, 0.97, 1.0)]
    big = np.zeros((1080, 1920), bool)
    big[3:1000, 700:1900] = True
    big[0, 0] = big[500, 5] = True
    masks += [big, rng.random((300, 200)) < 0.5]
    for mask in masks:
        counts = compressed(mask)["counts"]
        expected = uncompressed_rle(mask)["counts"]
        assert _compressed_runs(counts).tolist() == expected
        assert _compressed_runs(counts.decode()).tolist() == expected


def _of_size(height: int, width: int) -> dict:
    """A valid compressed RLE of a height x width frame, its size then claimed to be HEIGHT x WIDTH."""
    mask = np.zeros((height, width), bool)
    mask[2:5, 3:7] = True
    return {"size": [HEIGHT, WIDTH], "counts": compressed(mask)["counts"].decode()}


@pytest.mark.parametrize(("segmentation", "words"), [
    ("1234", ["expected null, an RLE", "str"]),
    ({"counts": "PP0"}, ["expected null, an RLE"]),
    ({"size": [HEIGHT + 1, WIDTH], "counts": "PP0"}, ['"size"', f"[{HEIGHT + 1}, {WIDTH}]", "[30, 40]"]),
    ({"size": HEIGHT * WIDTH, "counts": "PP0"}, ['"size"']),
    ({"size": [HEIGHT, WIDTH], "counts": 5}, ['"counts"', "int"]),
    ({"size": [HEIGHT, WIDTH], "counts": [HEIGHT * WIDTH - 1]}, ["add up to 1199", "1200"]),
    ({"size": [HEIGHT, WIDTH], "counts": [HEIGHT * WIDTH + 2, -2]}, ["between 0 and"]),
    ({"size": [HEIGHT, WIDTH], "counts": [600.0, 600.0]}, ["integer run lengths"]),
    ({"size": [HEIGHT, WIDTH], "counts": [[600], [600]]}, ["integer run lengths"]),
    (_of_size(HEIGHT, WIDTH - 1), ["add up to 1170", "1200"]),  # pycocotools would decode garbage
    ({"size": [HEIGHT, WIDTH], "counts": "ab~"}, ["'0' to 'o'"]),
    ({"size": [HEIGHT, WIDTH], "counts": "\u00e9"}, ["'0' to 'o'"]),
    ({"size": [HEIGHT, WIDTH], "counts": "PPP"}, ["ends inside a run"]),
    ({"size": [HEIGHT, WIDTH], "counts": "PPPPPPPP0"}, ["out of range"]),
    ([[1.0, 2.0, 3.0, 4.0]], ["polygon 0", "3 finite (x, y) points"]),  # pycocotools: a box
    ([POLYGON[0], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]], ["polygon 1", "7 numbers"]),
    ([[1.0, 2.0, 3.0, 4.0, 5.0, float("nan")]], ["polygon 0", "finite"]),
    ([["1", "2", "3", "4", "5", "6"]], ["polygon 0", "list of numbers"]),
    ([5.0, 4.0, 30.0, 6.0, 22.0, 25.0], ["polygon 0", "list of numbers"]),  # one polygon, not in a list
])
def test_invalid_segmentations_are_value_errors_saying_why(segmentation, words):
    for convert in (segmentation_to_rle, decode_segmentation, lambda s, h, w: decode_tube([None, s], h, w)):
        with pytest.raises(ValueError) as caught:
            convert(segmentation, HEIGHT, WIDTH)
        message = str(caught.value)
        assert "\n" not in message and all(word in message for word in words), message


def test_decoding_does_not_pass_on_pycocotools_numpy_deprecation_warning():
    rle = encode_tube(np.ones((1, 4, 5), bool))[0]
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        mask_utils.decode(rle)
    if not any(issubclass(w.category, DeprecationWarning) for w in raw):
        pytest.skip(f"this pycocotools / NumPy pair does not warn {ALLOWED_IN_CI}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert decode_segmentation(rle, 4, 5).all() and decode_tube([rle, None], 4, 5)[0].all()
    assert not caught, [str(w.message) for w in caught]
