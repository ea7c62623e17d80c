"""Getting dataset originals onto disk safely: checksummed, resumable downloads, safe extraction, atomic caches.

Every dataset module describes its originals as :class:`Remote` records and calls :func:`ensure_files`;
users without network access get one error that says exactly which files to put where.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import numpy as np

from lazymeta.infra.files import atomic_write

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_TIMEOUT_S = 60


class DatasetError(RuntimeError):
    """A dataset file is missing, corrupt or unsafe; the message names the file, the value and the fix."""


@dataclass(frozen=True)
class Remote:
    """One original file of a dataset: where it comes from and how to recognise it.

    Prefer ``sha256``; give ``md5`` only where that is all upstream publishes. A record without
    either checksum verifies nothing (only for files rebuilt locally, whose bytes differ from upstream).
    """

    filename: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None

    @property
    def checksum(self) -> tuple[str, str] | None:
        """(algorithm, hex digest) to verify against, strongest first."""
        if self.sha256:
            return "sha256", self.sha256.lower()
        if self.md5:
            return "md5", self.md5.lower()
        return None

    def describe(self) -> str:
        algo_value = self.checksum
        check = f" ({algo_value[0]} {algo_value[1]})" if algo_value else ""
        return f"{self.filename}{check} from {' or '.join(self.urls)}"


def ensure_file(remote: Remote, directory: str | os.PathLike, download: bool = False) -> Path:
    """Path of a verified copy of ``remote`` in ``directory``, downloading it first if allowed."""
    return ensure_files([remote], directory, download)[0]


def ensure_files(remotes: list[Remote], directory: str | os.PathLike, download: bool = False) -> list[Path]:
    """Paths of verified copies of all ``remotes``; one :class:`DatasetError` lists everything still missing."""
    directory = Path(directory)
    missing, failures = [], []
    for remote in remotes:
        path = directory / remote.filename
        if not path.exists() and download:
            failures += _download(remote, path)
        if path.exists():
            _verify(remote, path)
        else:
            missing.append(remote)
    if missing:
        raise DatasetError(_missing_message(missing, directory, download, failures))
    return [directory / remote.filename for remote in remotes]


def _missing_message(missing: list[Remote], directory: Path, download: bool, failures: list[str]) -> str:
    lines = [f"missing dataset file(s) in {directory}:"]
    lines += [f"  {remote.describe()}" for remote in missing]
    if download:
        lines.append("download failed:")
        lines += [f"  {failure}" for failure in failures]
        lines.append(f"Download the file(s) by other means and put them in {directory}/ (keep the names).")
    else:
        lines.append(f"Put the file(s) in {directory}/ (keep the names), or pass download=True to fetch them "
                     "(command line: `lazymeta data fetch NAME`, or `--set data.download=true`).")
    return "\n".join(lines)


def _verify(remote: Remote, path: Path) -> None:
    """Check size and checksum, trusting a marker written by an earlier check of the same size and mtime."""
    expected = remote.checksum
    if expected is None and remote.size is None:
        return
    st = path.stat()
    marker_path = path.with_name(path.name + ".verified")
    marker = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "checksum": list(expected or ())}
    try:
        if json.loads(marker_path.read_text()) == marker:
            return
    except (OSError, ValueError):
        pass
    problem = _mismatch(remote, path)
    if problem:
        raise DatasetError(f"{path} {problem}. Delete it and download it again from {' or '.join(remote.urls)} "
                           f"(or delete it and let lazymeta fetch it: `lazymeta data fetch NAME`, "
                           f"`--set data.download=true`, or download=True in Python).")
    try:
        marker_path.write_text(json.dumps(marker))
    except OSError:  # read-only data directory: verify again next time
        pass


def _mismatch(remote: Remote, path: Path) -> str | None:
    """What is wrong with ``path`` as a copy of ``remote``, or None."""
    size = path.stat().st_size
    expected = remote.checksum
    actual = _digest(path, expected[0]) if expected else None
    if (remote.size is None or size == remote.size) and (expected is None or actual == expected[1]):
        return None
    problem = "is not the expected file"
    if remote.size is not None and size < remote.size:
        problem = "is truncated (incomplete download?)"
    parts = [f"size {size} bytes" + (f", expected {remote.size}" if remote.size is not None else "")]
    if expected:
        parts.append(f"{expected[0]} {actual}, expected {expected[1]}")
    return f"{problem}: {'; '.join(parts)}"


def _digest(path: Path, algorithm: str) -> str:
    hasher = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _download(remote: Remote, path: Path) -> list[str]:
    """Fetch ``remote`` into ``path`` via ``path.part``; returns the reason each URL failed (empty on success)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    failures = []
    for url in remote.urls:
        try:
            resumed = _fetch(url, part)
            problem = _mismatch(remote, part)
            if problem and resumed:  # the kept partial file was not a prefix of this file: start over
                part.unlink()
                _fetch(url, part)
                problem = _mismatch(remote, part)
        except (OSError, HTTPException) as error:  # URLError, HTTPError, timeouts, disk errors, cut connections
            failures.append(f"{url}: {error}")
            continue
        if problem:
            part.unlink()
            failures.append(f"{url}: the downloaded file {problem}")
            continue
        os.replace(part, path)
        return []
    return failures


def _fetch(url: str, part: Path) -> bool:
    """Download ``url`` into ``part``, resuming an existing partial file when the server honours Range.

    Returns whether bytes were appended to an existing partial file.
    """
    offset = part.stat().st_size if part.exists() else 0
    request = Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    log.info("downloading %s to %s%s", url, part, f" (resuming at byte {offset})" if offset else "")
    try:
        response = urlopen(request, timeout=_TIMEOUT_S)
    except HTTPError as error:
        if error.code == 416 and offset:  # nothing left to send: the partial file may be complete
            return True
        raise
    with response:
        resumed = bool(offset) and response.status == 206 and \
            response.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        if response.status == 206 and not resumed:
            raise OSError(f"server answered a Range request with {response.headers.get('Content-Range')!r}")
        with open(part, "ab" if resumed else "wb") as f:
            while chunk := response.read(_CHUNK):
                f.write(chunk)
    return resumed


def safe_extract_zip(path: str | os.PathLike, directory: str | os.PathLike) -> None:
    """Extract a zip archive, refusing (before writing anything) members that would land outside ``directory``."""
    directory = Path(directory)
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise DatasetError(f"{path}: member {info.filename!r} is a symlink; refusing to extract it")
                _check_member_name(path, info.filename, directory)
            archive.extractall(directory)
    except zipfile.BadZipFile as error:
        raise DatasetError(f"{path} is not a valid zip archive ({error}); "
                           "delete it and download it again") from error


def safe_extract_tar(path: str | os.PathLike, directory: str | os.PathLike) -> None:
    """Extract a (compressed) tar archive with the same guarantees, links and devices included.

    Members are checked before anything is written; tarfile's ``data`` filter checks again while
    extracting, against the links already created.
    """
    directory = Path(directory)
    try:
        with tarfile.open(path) as archive:
            members = archive.getmembers()
            for member in members:
                _check_member_name(path, member.name, directory)
                try:
                    tarfile.data_filter(member, str(directory))
                except tarfile.FilterError as error:
                    raise DatasetError(f"{path}: unsafe member {member.name!r} ({error}); refusing to extract") \
                        from error
            archive.extractall(directory, members=members, filter="data")
    except tarfile.FilterError as error:
        raise DatasetError(f"{path}: unsafe member ({error}); refusing to extract") from error
    except tarfile.TarError as error:
        raise DatasetError(f"{path} is not a valid tar archive ({error}); "
                           "delete it and download it again") from error


def _check_member_name(archive: str | os.PathLike, name: str, directory: Path) -> None:
    """Reject absolute names, ``..`` components and names that resolve (through existing links) outside."""
    pure = PurePosixPath(name.replace("\\", "/"))
    target = (directory / pure).resolve()
    inside = target == directory.resolve() or directory.resolve() in target.parents
    if pure.is_absolute() or ".." in pure.parts or not inside:
        raise DatasetError(f"{archive}: member {name!r} would be written outside {directory}; "
                           "refusing to extract")


def atomic_save_npz(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Write an uncompressed ``.npz`` so that readers see either the old file or the complete new one."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a path
            np.savez(f, **arrays)

    atomic_write(path, write)
