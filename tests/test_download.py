"""`download_dataset` against a real HTTP server on 127.0.0.1 (Range requests, cut connections, bad bytes)."""

from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lit_video.data.check import check_datamodule
from lit_video.data.download import SOURCES, DatasetSource, DownloadError, RemoteFile, download_dataset
from lit_video.data.formats.hmdb51 import HMDB51DataModule
from lit_video.data.formats.ucf101 import UCF101DataModule


@dataclass
class Served:
    """What the server holds and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    cut_after: dict[str, int] = field(default_factory=dict)  # path -> bytes sent before the connection drops, once
    corrupt_times: dict[str, int] = field(default_factory=dict)  # path -> how many responses get a flipped byte
    requests: list[tuple[str, str | None]] = field(default_factory=list)  # (path, Range header)
    bytes_sent: dict[str, int] = field(default_factory=dict)
    url: str = ""


@pytest.fixture
def server():
    served = Served()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            served.requests.append((self.path, self.headers.get("Range")))
            body = served.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            if served.corrupt_times.get(self.path, 0) > 0:
                served.corrupt_times[self.path] -= 1
                body = bytes([body[0] ^ 0xFF]) + body[1:]
            start = 0
            range_header = self.headers.get("Range")
            if range_header and served.honour_range:
                start = int(range_header.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            cut = served.cut_after.pop(self.path, None)
            if cut is not None:
                payload = payload[:cut]
                self.close_connection = True
            # counted before the write: the client may finish reading (and the test look) before this thread
            # runs again
            served.bytes_sent[self.path] = served.bytes_sent.get(self.path, 0) + len(payload)
            self.wfile.write(payload)
            self.wfile.flush()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield served
    httpd.shutdown()
    httpd.server_close()


def zip_of(folder: Path, names: list[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in names:
            zf.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def tar_of(folder: Path, top: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        tf.add(folder / top, arcname=top)
    return buffer.getvalue()


def remote(served: Served, name: str, body: bytes, unpack: str, checksum: bool = True, **kwargs) -> RemoteFile:
    """Serve `body` as `/name` and describe it as the table would (sha256 and size)."""
    served.files[f"/{name}"] = body
    digest = f"sha256:{hashlib.sha256(body).hexdigest()}" if checksum else None
    return RemoteFile(f"{served.url}/{name}", name, len(body), digest, unpack, **kwargs)


def test_ucf101_resumes_a_cut_download_verifies_extracts_and_a_rerun_fetches_nothing(server, ucf101_root, tmp_path):
    lists = sorted((ucf101_root / "ucfTrainTestlist").iterdir())
    splits = remote(server, "UCF101TrainTestSplits-RecognitionTask.zip", zip_of(ucf101_root, lists), "zip")
    # the real UCF101.rar holds UCF-101/<Class>/*.avi; a tar of the same layout stands in (no rar writer here)
    videos_body = tar_of(ucf101_root, "UCF-101")
    videos = remote(server, "UCF101.tar", videos_body, "tar", checksum=False)
    server.cut_after["/UCF101.tar"] = len(videos_body) // 2
    table = {"ucf101": DatasetSource(files=(splits, videos))}
    messages = []

    summary = download_dataset("ucf101", tmp_path, progress=messages.append, table=table)

    assert summary.fetched == [splits.name] and summary.resumed == [videos.name]
    assert summary.verified == summary.extracted == [splits.name, videos.name]
    video_requests = [rng for path, rng in server.requests if path == "/UCF101.tar"]
    assert video_requests == [None, f"bytes={len(videos_body) // 2}-"]
    assert server.bytes_sent["/UCF101.tar"] == len(videos_body)  # each byte once, not the file twice
    assert f"{videos.name}: no published checksum: size checked only" in messages
    assert (tmp_path / ".downloads" / videos.name).read_bytes() == videos_body
    assert not (tmp_path / ".downloads" / f"{videos.name}.part").exists()
    reports = check_datamodule(UCF101DataModule(str(tmp_path), decoder="pyav"), show_progress=False)
    assert reports["train"].listed > 0
    assert all(r.readable == r.listed for r in reports.values())

    seen = len(server.requests)
    again = download_dataset("ucf101", tmp_path, table=table)
    assert len(server.requests) == seen
    assert again.skipped == [splits.name, videos.name] and again.extracted == [] and again.fetched == []


@pytest.mark.parametrize("honour_range", [True, False])
def test_a_partial_file_from_an_earlier_run_is_resumed_or_refetched_when_range_is_ignored(server, tmp_path,
                                                                                          honour_range):
    body = bytes(range(256)) * 400
    server.honour_range = honour_range
    file = remote(server, "notes.bin", body, "keep")
    (tmp_path / ".downloads").mkdir()
    (tmp_path / ".downloads" / "notes.bin.part").write_bytes(body[:1000])

    summary = download_dataset("x", tmp_path, table={"x": DatasetSource(files=(file,))})

    assert server.requests == [("/notes.bin", "bytes=1000-")]
    assert server.bytes_sent["/notes.bin"] == (len(body) - 1000 if honour_range else len(body))
    assert (summary.resumed if honour_range else summary.fetched) == ["notes.bin"]
    assert (tmp_path / "notes.bin").read_bytes() == body


def test_a_file_failing_its_checksum_is_deleted_and_fetched_again(server, tmp_path):
    body = b"split lists " * 1000
    file = remote(server, "lists.bin", body, "keep")
    server.corrupt_times["/lists.bin"] = 1
    messages = []

    summary = download_dataset("x", tmp_path, progress=messages.append, table={"x": DatasetSource(files=(file,))})

    assert summary.fetched == ["lists.bin", "lists.bin"] and summary.verified == ["lists.bin"]
    assert any("does not match the published" in m for m in messages)
    assert (tmp_path / "lists.bin").read_bytes() == body


def test_a_file_failing_its_checksum_twice_stops_with_one_line(server, tmp_path):
    file = remote(server, "lists.bin", b"x" * 5000, "keep")
    server.corrupt_times["/lists.bin"] = 2

    with pytest.raises(DownloadError) as raised:
        download_dataset("x", tmp_path, table={"x": DatasetSource(files=(file,))})

    message = str(raised.value)
    assert "\n" not in message and file.url in message and "sha256" in message
    assert not list((tmp_path / ".downloads").iterdir())  # nothing unverified is kept


def test_a_network_error_is_one_line_naming_the_url(tmp_path):
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"http://127.0.0.1:{port}/UCF101.rar"  # nothing listens there
    file = RemoteFile(url, "UCF101.rar", None, None, "keep")

    with pytest.raises(DownloadError) as raised:
        download_dataset("x", tmp_path, table={"x": DatasetSource(files=(file,))})

    assert "\n" not in str(raised.value) and url in str(raised.value)


def test_kinetics_stops_with_one_line_saying_what_to_fetch_by_hand(tmp_path):
    with pytest.raises(DownloadError) as raised:
        download_dataset("kinetics", tmp_path)

    message = str(raised.value)
    assert "\n" not in message
    assert "https://github.com/cvdfoundation/kinetics-dataset" in message and str(tmp_path) in message
    assert not (tmp_path / ".downloads").exists()


@pytest.mark.parametrize("member", ["../evil", "{tmp}/evil", "DAVIS/../../evil"])
def test_an_archive_with_a_member_outside_the_root_is_refused(server, tmp_path, member):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("DAVIS/ImageSets/2017/val.txt", "bear\n")
        zf.writestr(member.format(tmp=tmp_path), "owned")
    root = tmp_path / "root"
    file = remote(server, "DAVIS-2017-trainval-480p.zip", buffer.getvalue(), "zip")

    with pytest.raises(DownloadError, match="leads outside the extraction folder") as raised:
        download_dataset("davis", root, table={"davis": DatasetSource(files=(file,))})

    assert "\n" not in str(raised.value)
    assert not (tmp_path / "evil").exists()  # where each of the members would have landed
    assert not (root / "DAVIS").exists()  # refused before anything was written
    assert not (root / ".downloads" / f"{file.name}.done").exists()


def test_a_tar_holding_a_link_out_of_the_root_is_refused(server, tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tf:
        link = tarfile.TarInfo("YouTubeClips/passwd.avi")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    file = remote(server, "YouTubeClips.tar", buffer.getvalue(), "tar")

    with pytest.raises(DownloadError, match="is a link; archive refused"):
        download_dataset("msvd", tmp_path, table={"msvd": DatasetSource(files=(file,))})

    assert not (tmp_path / "YouTubeClips" / "passwd.avi").exists()


def test_nested_class_archives_are_extracted_and_read_by_the_datamodule(server, hmdb51_root, tmp_path):
    # hmdb51_org.rar holds one archive per class (brush_hair.rar -> brush_hair/*.avi); zips stand in for rars
    classes = sorted(p for p in hmdb51_root.iterdir() if p.is_dir() and p.name != "testTrainMulti_7030_splits")
    outer = io.BytesIO()
    with zipfile.ZipFile(outer, "w") as zf:
        for folder in classes:
            zf.writestr(f"{folder.name}.zip", zip_of(hmdb51_root, sorted(folder.iterdir())))
    videos = remote(server, "hmdb51_org.zip", outer.getvalue(), "zip", lands_in="hmdb51_org", nested=True)
    split_files = sorted((hmdb51_root / "testTrainMulti_7030_splits").iterdir())
    splits = remote(server, "test_train_splits.zip", zip_of(hmdb51_root, split_files), "zip")

    summary = download_dataset("hmdb51", tmp_path, table={"hmdb51": DatasetSource(files=(videos, splits))})

    assert summary.extracted == [videos.name, splits.name]
    assert not list((tmp_path / "hmdb51_org").glob("*.zip"))  # the class archives are removed once extracted
    datamodule = HMDB51DataModule(str(tmp_path))
    for subset in ("train", "test"):
        records = datamodule.list_records(subset)
        assert records and all(Path(r.path).is_file() for r in records)
        assert all(Path(r.path).parent.parent == tmp_path / "hmdb51_org" for r in records)


def test_a_rar_without_an_extractor_names_the_tools_to_install(server, tmp_path, monkeypatch):
    file = remote(server, "test_train_splits.rar", b"Rar!\x1a\x07\x00" + b"\x00" * 64, "rar")
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))

    with pytest.raises(DownloadError) as raised:
        download_dataset("hmdb51", tmp_path, table={"hmdb51": DatasetSource(files=(file,))})

    message = str(raised.value)
    assert "\n" not in message and all(tool in message for tool in ("unrar", "7z", "bsdtar", "unar"))
    assert (tmp_path / ".downloads" / file.name).exists()  # verified and kept: a re-run only extracts


def test_every_published_table_entry_is_fetchable_or_says_what_to_fetch_by_hand():
    lengths = {"sha256": 64, "md5": 32}
    for format_name, source in SOURCES.items():
        assert source.files or source.manual, format_name
        for file in source.files:
            assert file.url.startswith(("https://", "http://")) and file.url.endswith(file.name), file
            if file.checksum is not None:
                algorithm, _, digest = file.checksum.partition(":")
                assert len(digest) == lengths[algorithm] and int(digest, 16) >= 0, file


def test_prepare_downloads_then_checks_the_dataset(server, ucf101_root, tmp_path, monkeypatch, capsys):
    """`lit-video data prepare --download`: the format's table fetched into the root, then a strict check."""
    from lit_video.cli import main
    from lit_video.data import download

    lists = sorted((ucf101_root / "ucfTrainTestlist").iterdir())
    splits = remote(server, "UCF101TrainTestSplits-RecognitionTask.zip", zip_of(ucf101_root, lists), "zip")
    videos = remote(server, "UCF101.tar", tar_of(ucf101_root, "UCF-101"), "tar")
    monkeypatch.setitem(download.SOURCES, "ucf101", DatasetSource(files=(splits, videos)))
    root = tmp_path / "ucf101"

    assert main(["data", "prepare", "--format", "ucf101", "--root", str(root), "--download"]) == 0
    out = capsys.readouterr().out
    assert "ucf101: 2 fetched, 0 resumed, 0 already done, 2 extracted" in out and "missing files" not in out
    assert main(["data", "prepare", "--format", "ucf101", "--root", str(root), "--download"]) == 0
    assert "ucf101: 0 fetched, 0 resumed, 2 already done, 0 extracted" in capsys.readouterr().out
