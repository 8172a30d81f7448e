"""`lit-video data prepare --download`: fetch a dataset's published files, resumably and verified.

Each format has a table (`SOURCES`) of the files its authors publish: URL, size, checksum (as
published, with its source), what to do with the file and where it lands under the root. A file is
fetched into `<root>/.downloads/<name>.part` (resumed with an HTTP Range request when a part is
there), checked against its size and checksum, and only then renamed to `<root>/.downloads/<name>`.
Archives are extracted into the root, refusing any member that would land outside it, and a marker
`<root>/.downloads/<name>.done` makes a re-run fetch and extract nothing.

Formats whose files need an account, a form or a YouTube downloader have a `manual` line instead:
what to fetch by hand, from where, and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.client import HTTPException, IncompleteRead
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from lit_video.errors import LitVideoError

DOWNLOADS_DIR = ".downloads"
TIMEOUT_S = 60  # per socket operation, not per file
CHUNK_BYTES = 1 << 20
# A cut connection is resumed from where it stopped this many times in one run before giving up.
NETWORK_ATTEMPTS = 4
UNPACK_KINDS = ("zip", "tar", "rar", "keep")
# Command-line extractors for rar, in order of preference: (program, list command, extract command).
# `{archive}` and `{dest}` are filled in; the list command prints one member name a line (7z: `Path = `).
RAR_TOOLS = (
    ("unrar", ["unrar", "lb", "{archive}"], ["unrar", "x", "-o+", "-idq", "{archive}", "{dest}/"]),
    ("7z", ["7z", "l", "-ba", "-slt", "{archive}"], ["7z", "x", "-y", "-bd", "-o{dest}", "{archive}"]),
    ("bsdtar", ["bsdtar", "-tf", "{archive}"], ["bsdtar", "-xf", "{archive}", "-C", "{dest}"]),
    ("unar", ["lsar", "{archive}"], ["unar", "-q", "-f", "-D", "-o", "{dest}", "{archive}"]),
)


class DownloadError(LitVideoError):
    """A file cannot be fetched, verified or extracted (one line naming the URL or file)."""


@dataclass(frozen=True)
class RemoteFile:
    """One published file of a dataset.

    Args:
        url: where it is published.
        name: the file name it is saved under in `<root>/.downloads/`.
        size: its size in bytes, None where unknown.
        checksum: `"sha256:<hex>"` or `"md5:<hex>"` as published, None where none is published.
        unpack: "zip", "tar" or "rar" (extracted), or "keep" (copied as it is).
        lands_in: the folder under the root it is extracted (or copied) into.
        strip_components: leading folders dropped from every member name (as `tar --strip-components`).
        nested: the archive holds one archive per class (HMDB51): those are extracted in turn and removed.
    """

    url: str
    name: str
    size: int | None
    checksum: str | None
    unpack: str
    lands_in: str = "."
    strip_components: int = 0
    nested: bool = False


@dataclass(frozen=True)
class DatasetSource:
    """What `download_dataset` fetches for one format, and what is left to fetch by hand.

    Args:
        files: the files fetched and extracted.
        manual: what to fetch by hand, from where, and where it goes. Without `files` the download stops with
            this line; with them it is reported in `DownloadSummary.manual` once they are in place.
    """

    files: tuple[RemoteFile, ...] = ()
    manual: str | None = None


@dataclass
class DownloadSummary:
    """What one `download_dataset` call did, by file name."""

    fetched: list[str] = field(default_factory=list)  # downloaded from the start
    resumed: list[str] = field(default_factory=list)  # continued from a partial file
    verified: list[str] = field(default_factory=list)  # size and (where published) checksum matched
    skipped: list[str] = field(default_factory=list)  # done by an earlier run: no request, no extraction
    extracted: list[str] = field(default_factory=list)  # archives extracted (or files copied) into the root
    manual: str | None = None  # what is still to be fetched by hand


UCF101_HOST = "https://www.crcv.ucf.edu/data/UCF101"
HMDB51_HOST = "http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10"
DAVIS_HOST = "https://data.vision.ee.ethz.ch/csergi/share/davis"

SOURCES: dict[str, DatasetSource] = {
    "ucf101": DatasetSource(files=(
        # -> UCF-101/<Class>/v_<Class>_gXX_cYY.avi
        RemoteFile(f"{UCF101_HOST}/UCF101.rar", "UCF101.rar", None,
                   # pytorch/vision torchvision/prototype/datasets/_builtin/ucf101.py
                   "sha256:ca8dfadb4c891cb11316f94d52b6b0ac2a11994e67a0cae227180cd160bd8e55", "rar"),
        # -> ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt
        RemoteFile(f"{UCF101_HOST}/UCF101TrainTestSplits-RecognitionTask.zip",
                   "UCF101TrainTestSplits-RecognitionTask.zip",
                   113943,  # tensorflow/datasets tensorflow_datasets/url_checksums/ucf101.txt
                   # tensorflow/datasets url_checksums/ucf101.txt and pytorch/vision prototype ucf101.py
                   "sha256:5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27", "zip"),
    )),
    "hmdb51": DatasetSource(files=(
        # one rar per class (brush_hair.rar, ...), each holding <class>/<video>.avi -> hmdb51_org/<class>/
        RemoteFile(f"{HMDB51_HOST}/hmdb51_org.rar", "hmdb51_org.rar", None,
                   # pytorch/vision torchvision/prototype/datasets/_builtin/hmdb51.py
                   "sha256:9e714a0d8b76104d76e932764a7ca636f929fff66279cda3f2e326fa912a328e", "rar",
                   lands_in="hmdb51_org", nested=True),
        # -> testTrainMulti_7030_splits/<class>_test_split<N>.txt
        RemoteFile(f"{HMDB51_HOST}/test_train_splits.rar", "test_train_splits.rar", None,
                   # pytorch/vision torchvision/prototype/datasets/_builtin/hmdb51.py (torchvision's
                   # datasets/hmdb51.py publishes md5 15e67781e70dcfbdce2d7dbb9b3344b5 for the same file)
                   "sha256:229c94f845720d01eb3946d39f39292ea962d50a18136484aa47c1eba251d2b7", "rar"),
    )),
    "davis": DatasetSource(files=(
        # -> DAVIS/{JPEGImages,Annotations}/480p/<seq>/, DAVIS/ImageSets/{2016,2017}/
        RemoteFile(f"{DAVIS_HOST}/DAVIS-2017-trainval-480p.zip", "DAVIS-2017-trainval-480p.zip",
                   832766765,  # tensorflow/datasets tensorflow_datasets/video/davis/checksums.tsv
                   # tensorflow/datasets tensorflow_datasets/video/davis/checksums.tsv
                   "sha256:e3d0b5b77c3d031b000a19e0e25e3e2cac65d183755601bc2cf066df1a2aa492", "zip"),
    )),
    # DAVIS 2017 unsupervised (`annotations: unsupervised`): the same frames with Annotations_unsupervised/.
    "davis-unsupervised": DatasetSource(files=(
        RemoteFile(f"{DAVIS_HOST}/DAVIS-2017-Unsupervised-trainval-480p.zip",
                   "DAVIS-2017-Unsupervised-trainval-480p.zip", None, None, "zip"),  # no published checksum
    )),
    "msrvtt": DatasetSource(
        files=(
            # the videos as shared by Frozen in Time (m-bain/frozen-in-time): MSRVTT/videos/all/video<N>.mp4
            # -> videos/all/; no published size or checksum
            RemoteFile("https://www.robots.ox.ac.uk/~maxbain/frozen-in-time/data/MSRVTT.zip", "MSRVTT.zip",
                       None, None, "zip", strip_components=1),
        ),
        manual="MSR-VTT annotations are not published at a stable URL: put train_val_videodatainfo.json and "
               "test_videodatainfo.json from the MSR-VTT 2016 challenge release (train_val_annotation.zip, "
               "test_videodata.zip) in {root}/annotations/",
    ),
    "msvd": DatasetSource(
        files=(
            # -> YouTubeClips/<VideoID>_<Start>_<End>.avi; no published size or checksum
            RemoteFile("https://www.cs.utexas.edu/users/ml/clamp/videoDescription/YouTubeClips.tar",
                       "YouTubeClips.tar", None, None, "tar"),
        ),
        manual="MSVD descriptions are not at a stable URL: put 'MSR Video Description Corpus.csv' (Microsoft "
               "Download Center, https://www.microsoft.com/en-us/download/details.aspx?id=52422) and "
               "youtube_mapping.txt (the clip -> vid<N> list released with S2VT, Venugopalan et al. 2015) in {root}/",
    ),
    "kinetics": DatasetSource(manual=(
        "Kinetics clips are YouTube videos and are not downloaded here: fetch the clips and the train/validate/test "
        "CSVs with the CVDF scripts (https://github.com/cvdfoundation/kinetics-dataset), then put train.csv, "
        "validate.csv, test.csv and the train/, val/, test/ clip folders in {root}/")),
    "ssv2": DatasetSource(manual=(
        "Something-Something V2 needs an account: download the video parts and labels from "
        "https://www.qualcomm.com/developer/software/something-something-v-2-dataset, then put the videos in "
        "{root}/20bn-something-something-v2/ and labels.json + something-something-v2-{{train,validation,test}}.json "
        "in {root}/labels/")),
    "youtube-vos": DatasetSource(manual=(
        "YouTube-VOS needs a CodaLab registration: download train.zip and valid.zip from "
        "https://youtube-vos.org/dataset/vos/ and extract them so that {root}/train/ and {root}/valid/ hold "
        "JPEGImages/, Annotations/ and meta.json")),
    "youtube-vis": DatasetSource(manual=(
        "YouTube-VIS needs a CodaLab registration: download train.zip, valid.zip and the annotations from "
        "https://youtube-vos.org/dataset/vis/ and extract them so that {root}/train/ and {root}/valid/ hold "
        "JPEGImages/ and instances.json (2021) or put train.json / valid.json beside them (2019)")),
}


def download_dataset(format: str, root: str | os.PathLike, *, progress: Callable[[str], None] | None = None,
                     table: Mapping[str, DatasetSource] | None = None) -> DownloadSummary:
    """Fetch, verify and extract every published file of `format` into `root`.

    A re-run does nothing for files already extracted (no request is made); a partial download is resumed.

    Args:
        format: a key of `table` ("ucf101", "hmdb51", "davis", ...).
        root: the dataset root; downloads go to `<root>/.downloads/`.
        progress: called with one line per step (fetching, resuming, verifying, extracting); also shows a byte
            progress bar when given.
        table: the sources to use instead of `SOURCES` (tests point it at a local server).

    Raises:
        DownloadError: an unknown format, a format to fetch by hand, a network error (naming the URL), a file
            failing its checksum twice, a hostile archive or a missing rar extractor.
    """
    table = SOURCES if table is None else table
    if format not in table:
        raise DownloadError(f"no download for format {format!r}; formats: {', '.join(sorted(table))}")
    source = table[format]
    root = Path(root)
    if not source.files:
        raise DownloadError((source.manual or f"{format}: nothing to download").format(root=root))
    say = progress or (lambda message: None)
    downloads = root / DOWNLOADS_DIR
    downloads.mkdir(parents=True, exist_ok=True)
    summary = DownloadSummary()
    for remote in source.files:
        if remote.unpack not in UNPACK_KINDS:
            raise DownloadError(f"{remote.name}: unpack must be one of {', '.join(UNPACK_KINDS)}, got {remote.unpack!r}")
        done_marker = downloads / f"{remote.name}.done"
        if done_marker.exists():
            summary.skipped.append(remote.name)
            continue
        saved = downloads / remote.name
        if not saved.exists():
            _fetch_verified(remote, downloads, summary, say, show_bar=progress is not None)
        say(f"extracting {remote.name} into {root / remote.lands_in}")
        _unpack(remote, saved, root)
        summary.extracted.append(remote.name)
        done_marker.write_text(f"{remote.url}\n")
    if source.manual:
        summary.manual = source.manual.format(root=root)
        say(summary.manual)
    return summary


def _fetch_verified(remote: RemoteFile, downloads: Path, summary: DownloadSummary, say: Callable[[str], None],
                    show_bar: bool) -> None:
    """Fetch `remote` into `<name>.part`, verify it, rename it to `<name>`; a file failing its checksum is
    deleted and fetched once more from the start."""
    part = downloads / f"{remote.name}.part"
    for attempt in range(2):
        resumed = _fetch(remote, part, say, show_bar)
        (summary.resumed if resumed else summary.fetched).append(remote.name)
        problem = _verification_problem(remote, part, say)
        if problem is None:
            break
        part.unlink()
        if attempt == 1:
            raise DownloadError(f"{remote.url}: {problem} twice; the server's file differs from the published one")
        say(f"{remote.name}: {problem}; fetching it again")
    summary.verified.append(remote.name)
    part.replace(downloads / remote.name)


def _fetch(remote: RemoteFile, part: Path, say: Callable[[str], None], show_bar: bool) -> bool:
    """Download `remote.url` into `part`, continuing a partial file with a Range request (and again after a cut
    connection, up to NETWORK_ATTEMPTS times). Returns whether any bytes already on disk were kept."""
    kept_any = False
    for attempt in range(NETWORK_ATTEMPTS):
        have = part.stat().st_size if part.exists() else 0
        if remote.size is not None and have == remote.size:
            return kept_any  # complete already: a cut came after the last byte
        request = urllib.request.Request(remote.url, headers={"User-Agent": "lit-video"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                if have and response.status == 206 and _range_start(response) == have:
                    kept_any = True
                    say(f"resuming {remote.name} at byte {have}")
                    mode = "ab"
                else:
                    if have:
                        say(f"{remote.name}: the server ignored the Range request; fetching it from the start")
                    have, mode = 0, "wb"
                    say(f"fetching {remote.url}")
                length = response.headers.get("Content-Length")
                total = have + int(length) if length and length.isdigit() else remote.size
                with open(part, mode) as out, tqdm(total=total, initial=have, unit="B", unit_scale=True,
                                                   desc=remote.name, disable=not show_bar) as bar:
                    received = 0
                    for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                        out.write(chunk)
                        bar.update(len(chunk))
                        received += len(chunk)
                if length and length.isdigit() and received < int(length):
                    # the connection closed before the announced end: keep what came and ask for the rest
                    raise IncompleteRead(b"", int(length) - received)
            return kept_any
        except urllib.error.HTTPError as err:
            if err.code == 416 and have:  # the part is longer than the file: start again
                part.unlink()
                continue
            raise DownloadError(f"cannot download {remote.url}: HTTP {err.code} {err.reason}") from None
        except (urllib.error.URLError, HTTPException, OSError) as err:
            reason = getattr(err, "reason", None) or err.__class__.__name__
            if attempt == NETWORK_ATTEMPTS - 1 or not part.exists():
                raise DownloadError(f"cannot download {remote.url}: {reason} (re-run to resume)") from None
            say(f"{remote.name}: connection lost ({reason}); resuming")
    raise DownloadError(f"cannot download {remote.url}: the server keeps refusing the byte range")


def _range_start(response) -> int | None:
    """The first byte of a 206 response's `Content-Range: bytes START-END/TOTAL`, None if unreadable."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _verification_problem(remote: RemoteFile, path: Path, say: Callable[[str], None]) -> str | None:
    """Why `path` is not `remote` (a wrong size or checksum), or None when it matches."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"size {size} bytes, expected {remote.size}"
    if remote.checksum is None:
        say(f"{remote.name}: no published checksum: size checked only")
        return None
    algorithm, _, expected = remote.checksum.partition(":")
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        return f"{algorithm} {digest.hexdigest()} does not match the published {expected}"
    say(f"{remote.name}: {algorithm} verified")
    return None


def _unpack(remote: RemoteFile, saved: Path, root: Path) -> None:
    """Extract (or copy) `saved` into `root / remote.lands_in`, then each archive it held when `nested`."""
    dest = _inside(root, root / remote.lands_in, remote.name)
    dest.mkdir(parents=True, exist_ok=True)
    if remote.unpack == "keep":
        shutil.copyfile(saved, dest / remote.name)
        return
    extract_archive(saved, dest, remote.unpack, remote.strip_components)
    if remote.nested:
        for inner in sorted(dest.glob(f"*.{remote.unpack}")):
            extract_archive(inner, dest, remote.unpack)
            inner.unlink()


def extract_archive(archive: Path, dest: Path, kind: str, strip_components: int = 0) -> None:
    """Extract a zip, tar or rar `archive` into `dest`, refusing the whole archive when any member's name is
    absolute, holds `..`, or is a link (archives are not trusted).

    Raises:
        DownloadError: a member that would land outside `dest`, a corrupt archive, or no rar extractor.
    """
    try:
        if kind == "zip":
            _extract_zip(archive, dest, strip_components)
        elif kind == "tar":
            _extract_tar(archive, dest, strip_components)
        else:
            _extract_rar(archive, dest, strip_components)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
        raise DownloadError(f"{archive}: not a readable {kind} archive ({err})") from None


def _member_path(archive: Path, name: str, strip_components: int) -> PurePosixPath | None:
    """The relative path a member lands at, None for one stripped away entirely.

    Raises:
        DownloadError: an absolute name or one holding `..` (it would land outside the root).
    """
    normalized = name.replace("\\", "/")
    parts = PurePosixPath(normalized).parts
    if normalized.startswith("/") or (parts and parts[0].endswith(":")) or ".." in parts:
        raise DownloadError(f"{archive}: member {name!r} leads outside the extraction folder; archive refused")
    parts = [p for p in parts if p not in ("", ".")][strip_components:]
    return PurePosixPath(*parts) if parts else None


def _extract_zip(archive: Path, dest: Path, strip_components: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        targets = [_member_path(archive, m.filename, strip_components) for m in members]  # checks every name first
        for member in members:
            if stat.S_ISLNK(member.external_attr >> 16):
                raise DownloadError(f"{archive}: member {member.filename!r} is a link; archive refused")
        for member, target in zip(members, targets):
            if target is None:
                continue
            path = dest / target
            if member.is_dir():
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as source, open(path, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK_BYTES)


def _extract_tar(archive: Path, dest: Path, strip_components: int) -> None:
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        kept = []
        for member in members:
            target = _member_path(archive, member.name, strip_components)
            if member.issym() or member.islnk():
                raise DownloadError(f"{archive}: member {member.name!r} is a link; archive refused")
            if target is not None:
                kept.append(member.replace(name=str(target), deep=False))
        try:
            # the "data" filter refuses device files and odd permissions on top of the checks above
            tf.extractall(dest, members=kept, filter="data")
        except tarfile.FilterError as err:
            raise DownloadError(f"{archive}: {err}; archive refused") from None


def _extract_rar(archive: Path, dest: Path, strip_components: int) -> None:
    """Extract with the first installed of unrar, 7z, bsdtar, unar, into a staging folder beside `dest`
    (listed and checked before, walked for links after) and merged into `dest`."""
    tool = next(((name, list_cmd, extract_cmd) for name, list_cmd, extract_cmd in RAR_TOOLS if shutil.which(
        list_cmd[0]) and shutil.which(extract_cmd[0])), None)
    if tool is None:
        raise DownloadError(f"{archive}: extracting rar archives needs one of unrar, 7z, bsdtar or unar "
                            f"(e.g. `apt install unrar` or `apt install libarchive-tools`)")
    name, list_cmd, extract_cmd = tool
    for member in _rar_members(archive, name, list_cmd):
        _member_path(archive, member, 0)
    staging = dest / f".{archive.name}.extracting"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [part.format(archive=archive, dest=staging) for part in extract_cmd]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        last_line = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DownloadError(f"{archive}: {name} failed ({last_line[0]})")
    for path in _walk(staging):
        if path.is_symlink():
            shutil.rmtree(staging, ignore_errors=True)
            raise DownloadError(f"{archive}: member {path.relative_to(staging)} is a link; archive refused")
    _merge(staging, dest, strip_components)
    shutil.rmtree(staging, ignore_errors=True)


def _rar_members(archive: Path, tool: str, list_cmd: list[str]) -> list[str]:
    """The member names a rar tool lists."""
    result = subprocess.run([part.format(archive=archive) for part in list_cmd], capture_output=True, text=True)
    if result.returncode != 0:
        raise DownloadError(f"{archive}: {tool} cannot list it; not a readable rar archive")
    lines = result.stdout.splitlines()
    if tool == "7z":
        return [line[len("Path = "):] for line in lines if line.startswith("Path = ")]
    if tool == "unar":
        return [line.strip() for line in lines[1:] if line.strip()]  # lsar's first line names the archive
    return [line for line in lines if line]


def _walk(folder: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            yield Path(dirpath) / name


def _merge(staging: Path, dest: Path, strip_components: int) -> None:
    """Move the files of `staging` into `dest`, dropping `strip_components` leading folders."""
    for path in _walk(staging):
        if path.is_dir():
            continue
        relative = PurePosixPath(*path.relative_to(staging).parts[strip_components:])
        if not relative.parts:
            continue
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)


def _inside(root: Path, path: Path, name: str) -> Path:
    """`path`, checked to be `root` or under it."""
    resolved_root = root.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise DownloadError(f"{name}: lands_in {path} is outside the root {root}")
    return path
