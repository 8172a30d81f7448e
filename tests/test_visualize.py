"""`lit-video visualize`: each prediction format drawn over its videos (frame count, size, overlay colours read
back from the MP4 and, exactly, from the PNG contact sheet), and bad input as one `lit-video: error:` line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
from cli_errors import assert_one_line_error, run_lit_video
from media_files import read_image, read_video
from PIL import Image

from lit_video.cli.visualize import output_names
from lit_video.data.masks import VOID, read_mask, write_mask
from lit_video.data.rle import decode_tube
from lit_video.video.overlay import evenly_spaced, palette_colours

# The MP4 is lossy (H.264 at CRF 18, 4:2:0 chroma) and the frames are textured: a loose check there, |diff| <= 12
# per channel on most pixels inside an object; the PNG contact sheet is checked exactly.
CODEC_TOLERANCE = 12
CODEC_SHARE = 0.8






def interior(mask: np.ndarray, depth: int) -> np.ndarray:
    """Pixels of `mask` at least `depth` 4-steps away from its outside (and from the frame's edge)."""
    inside = mask.copy()
    for _ in range(depth):
        padded = np.pad(inside, 1)
        inside = inside & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return inside


def blend(frame: np.ndarray, colour: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The documented blend: floor((1 - alpha) * frame + alpha * colour + 0.5)."""
    return np.floor((1 - alpha) * frame.astype(np.float64) + alpha * colour.astype(np.float64) + 0.5)


def assert_mostly(close: np.ndarray, share: float, what: str) -> None:
    """At least `share` of the pixels agree (the object's text label may cover a few)."""
    assert close.size, f"{what}: no pixels to check"
    assert close.mean() >= share, f"{what}: only {close.mean():.0%} of {close.size} pixels agree"


def band_of(tile: np.ndarray, video_height: int) -> np.ndarray:
    return tile[video_height:]


# --------------------------------------------------------------------------------------------- vos


def test_vos_draws_every_frame_with_the_prediction_in_the_palette_beside_the_ground_truth(davis_root, tmp_path):
    # the largest object of a first frame, predicted as object 5 so that the two halves differ in colour
    sequences = (davis_root / "ImageSets" / "2017" / "val.txt").read_text().split()
    area, sequence, object_id = max((int((read_mask(davis_root / "Annotations" / "480p" / s / "00000.png") == k).sum()),
                                     s, k) for s in sequences for k in range(1, 6))
    assert area > 300
    annotations = sorted((davis_root / "Annotations" / "480p" / sequence).glob("*.png"))
    for path in annotations:
        mask = read_mask(path)
        write_mask(tmp_path / "results" / sequence / path.name,
                   np.where(mask == object_id, 5, np.where(mask == VOID, 0, mask)).astype(np.uint8))
    out = tmp_path / "out"
    result = run_lit_video("visualize", "vos", "--gt", davis_root, "--pred", tmp_path / "results", "--videos",
                           sequence, "--with-gt", "--sheet", "--gif", "--out", out)
    assert result.returncode == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [f"{sequence}.gif", f"{sequence}.mp4", f"{sequence}_sheet.png"]

    frames = sorted((davis_root / "JPEGImages" / "480p" / sequence).glob("*.jpg"))
    first = read_image(frames[0])
    height, width = first.shape[:2]
    video = read_video(out / f"{sequence}.mp4")
    assert video.shape == (len(frames), height, 2 * width, 3)  # every frame; ground truth | prediction
    truth = read_mask(annotations[0]) == object_id
    inside, edge = interior(truth, 3), truth & ~interior(truth, 1)
    colours = palette_colours()
    sheet = read_image(out / f"{sequence}_sheet.png")
    assert sheet.shape == (2 * height, 4 * 2 * width, 3)  # 8 tiles of 2 frames side by side, 4 a row
    for half, colour in ((0, colours[object_id]), (1, colours[5])):
        tile = sheet[:height, half * width:(half + 1) * width]  # frame 0
        expected = blend(first, colour)
        assert_mostly((tile[inside] == expected[inside]).all(axis=1), 0.9, f"sheet, half {half}, blend")
        assert_mostly((tile[edge] == colour).all(axis=1), 0.8, f"sheet, half {half}, contour")
        decoded = video[0][:, half * width:(half + 1) * width]
        assert_mostly((np.abs(decoded[inside] - expected[inside]) <= CODEC_TOLERANCE).all(axis=1), CODEC_SHARE,
                      f"mp4, half {half}")
    # outside every object the frame is untouched (but for the objects' text labels)
    background = interior(read_mask(annotations[0]) == 0, 4)
    assert_mostly((sheet[:height, width:2 * width][background] == first[background]).all(axis=1), 0.95,
                  "background")
    with Image.open(out / f"{sequence}.gif") as gif:
        assert gif.n_frames == len(frames)


def test_vos_and_vis_run_without_torch(davis_root, tmp_path):
    sequence = (davis_root / "ImageSets" / "2017" / "val.txt").read_text().split()[0]
    write_mask(tmp_path / "results" / sequence / "00000.png", np.ones((96, 128), np.uint8))
    code = ("import json, sys\nfrom lit_video.cli import main\nstatus = main(sys.argv[1:])\n"
            "print(json.dumps([status] + [m for m in ('lightning', 'torch') if m in sys.modules]))")
    args = ["visualize", "vos", "--gt", str(davis_root), "--pred", str(tmp_path / "results"), "--max-frames", "2",
            "--out", str(tmp_path / "out")]
    completed = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert json.loads(completed.stdout.strip().splitlines()[-1]) == [0], completed.stdout + completed.stderr
    assert len(read_video(tmp_path / "out" / f"{sequence}.mp4")) == 2  # the cap, evenly spaced


# --------------------------------------------------------------------------------------------- vis


def test_vis_draws_each_result_as_a_track_in_its_palette_colour(ytvis_root, tmp_path):
    gt = ytvis_root / "valid" / "instances_gt.json"
    data = json.loads(gt.read_text())
    videos = {v["id"]: v for v in data["videos"]}

    def first_area(annotation):
        video = videos[annotation["video_id"]]
        return int(decode_tube(annotation["segmentations"][:1], video["height"], video["width"]).sum())

    largest = max(data["annotations"], key=first_area)
    video = videos[largest["video_id"]]
    own = [a for a in data["annotations"] if a["video_id"] == video["id"]]
    results = [{"video_id": a["video_id"], "category_id": a["category_id"], "segmentations": a["segmentations"],
                "score": 1.0} for a in own]
    # below the threshold: never drawn, whatever it covers
    results.append({**results[0], "score": 0.1, "category_id": data["categories"][-1]["id"],
                    "segmentations": [{"size": [video["height"], video["width"]], "counts": [0, video["height"] *
                                                                                             video["width"]]}] *
                    video["length"]})
    (tmp_path / "results.json").write_text(json.dumps(results))
    folder = video["file_names"][0].split("/")[0]
    out = tmp_path / "out"
    result = run_lit_video("visualize", "vis", "--gt", gt, "--pred", tmp_path / "results.json", "--sheet",
                           "--out", out)
    assert result.returncode == 0, result.output
    assert (out / f"{folder}.mp4").is_file() and (out / f"{folder}_sheet.png").is_file()

    height, width = video["height"], video["width"]
    mp4 = read_video(out / f"{folder}.mp4")
    assert mp4.shape == (video["length"], height, width, 3)
    # track k (1-based, best score first, ties in file order) has palette colour k; the first is on top
    labels = np.zeros((height, width), np.uint8)
    for k in range(len(own), 0, -1):
        labels[decode_tube(own[k - 1]["segmentations"][:1], height, width)[0].astype(bool)] = k
    k = own.index(largest) + 1
    inside = interior(labels == k, 2)
    frame = read_image(ytvis_root / "valid" / "JPEGImages" / video["file_names"][0])
    expected = blend(frame, palette_colours()[k])
    sheet = read_image(out / f"{folder}_sheet.png")
    shown = evenly_spaced(video["length"], 8)
    assert sheet.shape == (2 * height, 4 * width, 3) and shown[0] == 0
    assert_mostly((sheet[:height, :width][inside] == expected[inside]).all(axis=1), 0.9, "sheet blend")
    # the 0.1 result covers the whole frame: drawn, it would change every pixel; the text labels change some
    untouched = interior(labels == 0, 3)
    assert_mostly((sheet[:height, :width][untouched] == frame[untouched]).all(axis=1), 0.6, "background")
    assert_mostly((np.abs(mp4[0][inside] - expected[inside]) <= CODEC_TOLERANCE).all(axis=1), CODEC_SHARE,
                  "mp4 blend")


# --------------------------------------------------------------------------------------------- captioning


def test_captioning_draws_the_caption_and_references_below_the_video(msrvtt_root, tmp_path):
    data = json.loads((msrvtt_root / "train_val_videodatainfo.json").read_text())
    video_ids = [v["video_id"] for v in data["videos"][:2]]
    captions = {vid: next(s["caption"] for s in data["sentences"] if s["video_id"] == vid) for vid in video_ids}
    (tmp_path / "captions.json").write_text(json.dumps([{"image_id": v, "caption": c} for v, c in captions.items()]))
    out = tmp_path / "out"
    result = run_lit_video("visualize", "captioning", "--gt", msrvtt_root / "train_val_videodatainfo.json",
                           "--pred", tmp_path / "captions.json", "--max-frames", "10", "--sheet", "--out", out)
    assert result.returncode == 0, result.output
    with av.open(str(msrvtt_root / "videos" / f"{video_ids[0]}.mp4")) as container:
        source = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    factor = -(-320 // source.shape[2])  # enlarged to at least 320 pixels wide
    video = read_video(out / f"{video_ids[0]}.mp4")
    assert len(video) == 10 and video.shape[2] == factor * source.shape[2]
    video_height = factor * source.shape[1]
    band = band_of(read_image(out / f"{video_ids[0]}_sheet.png")[:video.shape[1], :video.shape[2]], video_height)
    assert band.shape[0] >= 3 * 12  # the prediction and two references, one line each
    rows_with_text = (band.max(axis=(1, 2)) > 128).sum()
    assert rows_with_text >= 3 * 5, "the band is blank"
    # the video pixels are kept above the band: frame 0, each pixel repeated
    tile = read_image(out / f"{video_ids[0]}_sheet.png")[:video_height, :video.shape[2]].astype(int)
    enlarged = source[0].repeat(factor, axis=0).repeat(factor, axis=1).astype(int)
    assert np.abs(tile - enlarged).mean() < 2


# --------------------------------------------------------------------------------------------- classification


def test_classification_marks_a_right_top1_green_and_a_wrong_one_red(ucf101_root, tmp_path):
    classes = [line.split()[1] for line in (ucf101_root / "ucfTrainTestlist" / "classInd.txt").read_text().split("\n")
               if line.strip()]
    listed = (ucf101_root / "ucfTrainTestlist" / "testlist01.txt").read_text().split()[:2]
    rows = []
    for n, entry in enumerate(listed):
        label = classes.index(entry.split("/")[0])
        scores = [0.1] * len(classes)
        scores[label if n == 0 else (label + 1) % len(classes)] = 0.7  # the first right, the second wrong
        rows.append({"video_id": Path(entry).stem, "label": label, "predicted": int(np.argmax(scores)),
                     "scores": scores})
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out"
    result = run_lit_video("visualize", "classification", "--pred", tmp_path / "predictions.jsonl", "--format",
                           "ucf101", "--root", ucf101_root, "--top-k", "1", "--sheet", "--out", out)
    assert result.returncode == 0, result.output
    with av.open(str(ucf101_root / "UCF-101" / listed[0])) as container:
        stream = container.streams.video[0]
        num_frames, source_height, source_width = stream.frames, stream.height, stream.width
        num_frames = num_frames or sum(1 for _ in container.decode(video=0))
    factor = -(-320 // source_width)
    for row, right in zip(rows, (True, False)):
        video = read_video(out / f"{row['video_id']}.mp4")
        assert len(video) == min(num_frames, 64) and video.shape[2] == factor * source_width
        band = band_of(read_image(out / f"{row['video_id']}_sheet.png")[:video.shape[1], :video.shape[2]],
                       factor * source_height).astype(int)
        red, green, blue = band[..., 0], band[..., 1], band[..., 2]
        greens = ((green > 150) & (red < 100) & (blue < 100)).sum()
        reds = ((red > 150) & (green < 100) & (blue < 100)).sum()
        assert (greens > 20 and reds == 0) if right else (reds > 20 and greens == 0), (row, greens, reds)
        assert ((band.min(axis=2) > 200).sum()) > 20  # the white "true: <class>" line


# --------------------------------------------------------------------------------------------- bad input


def test_bad_input_is_one_line_and_nothing_is_written(davis_root, ytvis_root, tmp_path):
    taken = tmp_path / "taken.mp4"
    taken.write_text("keep me\n")
    results = tmp_path / "results"
    sequence = (davis_root / "ImageSets" / "2017" / "val.txt").read_text().split()[0]
    write_mask(results / sequence / "00000.png", np.zeros((96, 128), np.uint8))
    out = tmp_path / "out"

    result = run_lit_video("visualize", "vos", "--gt", tmp_path / "nowhere", "--pred", results, "--out", out)
    assert_one_line_error(result, "--gt", str(tmp_path / "nowhere"), "no such")
    result = run_lit_video("visualize", "vos", "--gt", davis_root, "--pred", results, "--out", taken)
    assert_one_line_error(result, "--out", str(taken), "is a file")
    assert taken.read_text() == "keep me\n"

    gt = ytvis_root / "valid" / "instances_gt.json"
    (tmp_path / "results.json").write_text(json.dumps({"video_id": 1}))
    result = run_lit_video("visualize", "vis", "--gt", gt, "--pred", tmp_path / "results.json", "--out", out)
    assert_one_line_error(result, "results.json", "must be a list")
    # a video folder from the annotation file that climbs out of the frames folder
    data = json.loads(gt.read_text())
    data["videos"][0]["file_names"] = [f"../x/{Path(name).name}" for name in data["videos"][0]["file_names"]]
    (tmp_path / "hostile.json").write_text(json.dumps(data))
    first = [a for a in data["annotations"] if a["video_id"] == data["videos"][0]["id"]][0]
    (tmp_path / "results.json").write_text(json.dumps([{"video_id": first["video_id"], "category_id":
                                                        first["category_id"], "segmentations":
                                                        first["segmentations"], "score": 0.9}]))
    result = run_lit_video("visualize", "vis", "--gt", tmp_path / "hostile.json", "--pred", tmp_path / "results.json",
                           "--frames", ytvis_root / "valid" / "JPEGImages", "--out", out)
    assert_one_line_error(result, "../x", "outside")
    assert not out.exists()


def test_captioning_refuses_a_video_id_that_is_a_path(msrvtt_root, tmp_path):
    (tmp_path / "captions.json").write_text(json.dumps([{"image_id": "../x", "caption": "a red square"}]))
    result = run_lit_video("visualize", "captioning", "--gt", msrvtt_root / "train_val_videodatainfo.json", "--pred",
                           tmp_path / "captions.json", "--out", tmp_path / "out")
    assert_one_line_error(result, "captions.json", "'../x'", "not a plain name")
    assert not (tmp_path / "out").exists()


def test_output_names_stay_in_the_folder_and_apart():
    names = output_names(["../x", "..", "/etc/passwd", "a b", "a_b", "A_B", "", "video0"])
    assert names["video0"] == "video0"
    assert all("/" not in n and "\\" not in n and not n.startswith(".") and n for n in names.values())
    assert len({n.lower() for n in names.values()}) == len(names)


def test_overlay_functions_on_arrays(tmp_path):
    """What a LightningModule would call: exact blend and contour, void left alone, the band below the frames,
    an odd-sized video padded to even."""
    from lit_video.video.overlay import caption_frames, overlay_labels, write_mp4

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 31, 41, 3), dtype=np.uint8)
    labels = np.zeros((2, 31, 41), np.uint8)
    labels[:, 15:30, 2:38] = 3
    labels[:, 0:4, 0:4] = VOID
    drawn = overlay_labels(frames, labels, alpha=0.25, draw_text=False)
    colour = palette_colours()[3]
    inside = interior(labels[0] == 3, 1)
    assert (drawn[0][inside] == blend(frames[0], colour, 0.25)[inside]).all()
    assert (drawn[0][(labels[0] == 3) & ~inside] == colour).all()
    assert (drawn[:, labels[0] != 3] == frames[:, labels[0] != 3]).all()  # background and void untouched
    banded = caption_frames(drawn, ["a caption", ("a reference", (190, 190, 190))])
    assert banded.shape[2] == 41 and banded.shape[1] > 31 and (banded[:, :31] == drawn).all()
    assert banded[:, 31:].max() > 128
    write_mp4(tmp_path / "odd.mp4", drawn, fps=5)
    assert read_video(tmp_path / "odd.mp4").shape == (2, 32, 42, 3)
