"""download.py without network: a loopback HTTP server stands in for upstream."""
from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from lazymeta.data import download
from lazymeta.data.download import (
    DatasetError,
    Remote,
    atomic_save_npz,
    ensure_file,
    ensure_files,
)

PAYLOAD = bytes(range(256)) * 64  # 16 KiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range: bytes=N-`` only when ``server.ranges_ok``."""

    def do_GET(self) -> None:
        self.server.requests.append(self.headers.get("Range"))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match[1]) if match and self.server.ranges_ok else 0
        if start >= len(body) > 0:
            self.send_response(416)
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.files, httpd.requests, httpd.ranges_ok = {"/data.bin": PAYLOAD}, [], True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _remote(server, **checks) -> Remote:
    return Remote("data.bin", (f"http://127.0.0.1:{server.server_port}/data.bin",), **(checks or {"sha256": SHA}))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_download_then_reuse(server, tmp_path):
    path = ensure_file(_remote(server), tmp_path, download=True)
    assert path == tmp_path / "data.bin" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.part").exists()
    assert ensure_file(_remote(server), tmp_path, download=True) == path
    assert server.requests == [None]  # the second call found the file and did not download again


@pytest.mark.parametrize("ranges_ok, requests", [(True, ["bytes=5000-"]), (False, ["bytes=5000-"])])
def test_partial_download_is_resumed(server, tmp_path, ranges_ok, requests):
    server.ranges_ok = ranges_ok  # a server that ignores Range sends everything: the .part is rewritten
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD[:5000])
    assert ensure_file(_remote(server), tmp_path, download=True).read_bytes() == PAYLOAD
    assert server.requests == requests


def test_partial_download_of_another_file_starts_over(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(b"x" * 5000)
    assert ensure_file(_remote(server), tmp_path, download=True).read_bytes() == PAYLOAD
    assert server.requests == ["bytes=5000-", None]


def test_complete_part_file_is_finished(server, tmp_path):
    (tmp_path / "data.bin.part").write_bytes(PAYLOAD)  # interrupted between download and rename
    assert ensure_file(_remote(server), tmp_path, download=True).read_bytes() == PAYLOAD
    assert server.requests == [f"bytes={len(PAYLOAD)}-"]


def test_missing_without_download_names_everything(tmp_path):
    remotes = [Remote("a.zip", ("https://example.org/a.zip",), md5="0" * 32),
               Remote("b.zip", ("https://example.org/b.zip",), sha256="1" * 64)]
    with pytest.raises(DatasetError) as error:
        ensure_files(remotes, tmp_path / "ds")
    message = str(error.value)
    for text in (str(tmp_path / "ds"), "a.zip", "b.zip", "md5 " + "0" * 32, "sha256 " + "1" * 64,
                 "https://example.org/a.zip", "download=True"):
        assert text in message


def test_failed_download_gives_one_clear_error(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/data.bin"
    with pytest.raises(DatasetError) as error:
        ensure_file(Remote("data.bin", (url,), sha256=SHA), tmp_path, download=True)
    message = str(error.value)
    assert "download failed" in message and url in message and SHA in message and str(tmp_path) in message
    assert not (tmp_path / "data.bin").exists()


def test_download_with_wrong_checksum_is_discarded(server, tmp_path):
    with pytest.raises(DatasetError, match="sha256 " + SHA):
        ensure_file(_remote(server, sha256="f" * 64), tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []


def test_checksum_mismatch_names_file_and_both_checksums(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(b"not the payload")
    with pytest.raises(DatasetError) as error:
        ensure_file(Remote("data.bin", ("https://example.org/data.bin",), sha256=SHA), tmp_path)
    message = str(error.value)
    for text in (str(path), SHA, hashlib.sha256(b"not the payload").hexdigest(), "Delete it", "example.org"):
        assert text in message


def test_truncated_file_is_named(tmp_path):
    (tmp_path / "data.bin").write_bytes(PAYLOAD[:100])
    remote = Remote("data.bin", ("https://example.org/data.bin",), md5=hashlib.md5(PAYLOAD).hexdigest(),
                    size=len(PAYLOAD))
    with pytest.raises(DatasetError, match=rf"truncated.*size 100 bytes, expected {len(PAYLOAD)}"):
        ensure_file(remote, tmp_path)


def test_verified_file_is_not_hashed_again(tmp_path, monkeypatch):
    path = tmp_path / "data.bin"
    path.write_bytes(PAYLOAD)
    hashed = []
    digest = download._digest
    monkeypatch.setattr(download, "_digest", lambda *args: hashed.append(args) or digest(*args))
    remote = Remote("data.bin", ("https://example.org/data.bin",), sha256=SHA)
    ensure_file(remote, tmp_path)
    ensure_file(remote, tmp_path)
    assert len(hashed) == 1
    mtime = path.stat().st_mtime_ns
    path.write_bytes(PAYLOAD[::-1])  # replaced by a file of the same size, with another mtime: checked again
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    with pytest.raises(DatasetError):
        ensure_file(remote, tmp_path)


def _zip(path: Path, *members: zipfile.ZipInfo | str) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok/first.txt", "benign")
        for member in members:
            archive.writestr(member, "payload")
    return path


def _symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member", ["../evil", "/tmp/evil", "ok/../../evil", _symlink_info("link")])
def test_zip_escapes_are_rejected(tmp_path, member):
    archive = _zip(tmp_path / "bad.zip", member)
    out = tmp_path / "out"
    name = getattr(member, "filename", member)
    with pytest.raises(DatasetError, match=re.escape(f"{archive}: member {name!r}")):
        download.safe_extract_zip(archive, out)
    assert not (tmp_path / "evil").exists() and not out.exists()  # checked before anything was written


def test_zip_extracts(tmp_path):
    download.safe_extract_zip(_zip(tmp_path / "good.zip", "ok/sub/second.txt"), tmp_path / "out")
    assert (tmp_path / "out" / "ok" / "sub" / "second.txt").read_text() == "payload"


def _tar(path: Path, *members: tarfile.TarInfo) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for member in members:
            data = b"" if member.issym() else b"payload"
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return path


def _tarinfo(name: str, link: str | None = None) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    return info


@pytest.mark.parametrize("members", [
    [_tarinfo("../evil")],
    [_tarinfo("/tmp/evil")],
    [_tarinfo("up", link="..")],
    [_tarinfo("abs", link="/tmp")],
    [_tarinfo("sub/link", link="../../evil")],
])
def test_tar_escapes_are_rejected(tmp_path, members):
    archive = _tar(tmp_path / "bad.tar.gz", _tarinfo("ok.txt"), *members)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DatasetError, match=re.escape(f"{archive}: ")):
        download.safe_extract_tar(archive, out)
    assert not (tmp_path / "evil").exists() and list(out.iterdir()) == []


def test_tar_extracts_with_inner_links(tmp_path):
    archive = _tar(tmp_path / "good.tar.gz", _tarinfo("a/file.txt"), _tarinfo("a/alias", link="file.txt"))
    download.safe_extract_tar(archive, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "alias").read_text() == "payload"


def test_atomic_save_npz_round_trip_and_failure(tmp_path):
    path = tmp_path / "cache.npz"
    atomic_save_npz(path, x=np.arange(5))
    with pytest.raises((AttributeError, pickle.PicklingError)):  # a lambda fails halfway through the archive
        atomic_save_npz(path, y=np.arange(3), z=np.array([lambda: 0], dtype=object))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.npz"]  # no temp file left behind
    with np.load(path) as data:
        assert list(data) == ["x"] and data["x"].tolist() == [0, 1, 2, 3, 4]
