"""Reading the original file formats safely, and the decoded array caches every loader shares.

Users fetch dataset pickles from mirrors, so :func:`load_pickle` admits only the NumPy arrays and
builtin containers those files hold: a pickle that names any other callable (``os.system``) is
refused while it is being parsed, before that callable could run.
"""
from __future__ import annotations

import codecs
import gzip
import io
import json
import os
import pickle
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from PIL import Image

from lazymeta.infra.files import atomic_write
from lazymeta.data.download import DatasetError, atomic_save_npz

ImageAllocator = Callable[[tuple[int, ...]], np.ndarray]


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, and nothing more."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[str, object]:
    """The functions NumPy pickles call, taken from NumPy's own reducers (their module moved in NumPy 2)."""
    reconstruct = np.empty(0).__reduce__()[0]
    frombuffer = np.empty(1).__reduce_ex__(5)[0]
    scalar = np.float64(0).__reduce__()[0]
    found = {"numpy ndarray": np.ndarray, "numpy dtype": np.dtype}
    for package in ("numpy.core", "numpy._core"):
        found.update({f"{package}.multiarray _reconstruct": reconstruct,
                      f"{package}.multiarray scalar": scalar,
                      f"{package}.numeric _frombuffer": frombuffer})
    return found


_ALLOWED = {
    **_numpy_globals(),
    "_codecs encode": _latin1_encode,
    **{f"{module} {name}": getattr(__import__("builtins"), name) for module in ("builtins", "__builtin__")
       for name in ("set", "frozenset", "bytearray", "bytes", "complex", "slice")},
}


class _Forbidden(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[f"{module} {name}"]
        except KeyError:
            raise _Forbidden(f"refers to {module}.{name}") from None


def load_pickle(path: str | os.PathLike) -> object:
    """Unpickle a dataset file (Python 2 or 3) admitting only NumPy arrays, dtypes and builtin containers.

    Python 2 strings become ``str`` (latin-1), as NumPy's array pickles need.
    """
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="latin1").load()
    except _Forbidden as error:
        raise DatasetError(f"{path} {error}, which no dataset pickle holds: refusing to load it (it could run "
                           "arbitrary code). Delete it and get the file from a trusted source.") from error
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            MemoryError) as error:
        raise DatasetError(f"{path} is truncated or not a valid pickle ({type(error).__name__}: {error}); "
                           "delete it and download it again") from error


def entry(content: object, key: str, path: str | os.PathLike) -> object:
    """``content[key]`` of an unpickled dict (Python 2 files may have bytes keys), or an error naming the file."""
    if isinstance(content, dict):
        for candidate in (key, key.encode()):
            if candidate in content:
                return content[candidate]
    raise DatasetError(f"{path} holds no {key!r} entry; is it the original file of this dataset?")


_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike, ndim: int) -> np.ndarray:
    """An IDX file (LeCun's MNIST format, optionally gzipped) as an array, checking magic number and size."""
    try:
        with (gzip.open if str(path).endswith(".gz") else open)(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path} is truncated or corrupt ({error}); delete it and download it again") from error
    magic = data[:4]
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_TYPES or magic[3] != ndim:
        raise DatasetError(f"{path} is not an IDX file of {ndim} dimension(s) (magic number {magic.hex() or 'none'},"
                           f" expected 0000xx{ndim:02x}); delete it and download it again")
    header = 4 + 4 * ndim
    shape = tuple(int(n) for n in np.frombuffer(data[4:header], ">u4")) if len(data) >= header else ()
    dtype = np.dtype(_IDX_TYPES[magic[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(shape) != ndim or len(data) != expected:
        raise DatasetError(f"{path} holds {len(data)} bytes after decompression, but its header {shape} calls for "
                           f"{expected}: the file is truncated or corrupt; delete it and download it again")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def decode_image(data: bytes | str | np.ndarray, size: int, what: str) -> np.ndarray:
    """Encoded image -> uint8 (3, size, size) RGB, resized (LANCZOS, as ImageTransform) when needed.

    ``data`` may be bytes, a uint8 array (``cv2.imencode``) or a latin-1 str (a Python 2 pickle's bytes).
    """
    try:
        raw = data.encode("latin1") if isinstance(data, str) else bytes(data)
        with Image.open(io.BytesIO(raw)) as image:
            return to_chw(image, size)
    except (OSError, TypeError, ValueError) as error:
        raise DatasetError(f"{what} is not a readable image ({error}); delete it and get it again") from error


def to_chw(image: Image.Image, size: int) -> np.ndarray:
    """A PIL image as uint8 (3, size, size) RGB."""
    image = image.convert("RGB")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def resize_into(images: np.ndarray, out: np.ndarray, chunk: int = 1024) -> None:
    """Resize uint8 (N, C, H, W) into ``out`` (N, C, S, S) as ImageTransform resizes a user's image."""
    size = out.shape[-1]
    for start in range(0, len(images), chunk):
        for row, image in enumerate(images[start:start + chunk], start):
            pil = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
            resized = np.asarray(pil.resize((size, size), Image.Resampling.LANCZOS), dtype=np.uint8)
            out[row] = resized[None] if resized.ndim == 2 else resized.transpose(2, 0, 1)


def fingerprint(version: int, paths: Iterable[Path]) -> str:
    """Cache key: the decoder's version and the size and mtime of the originals present."""
    files = {str(p.name): [p.stat().st_size, p.stat().st_mtime_ns] for p in paths if p.exists()}
    return json.dumps({"version": version, "files": files}, sort_keys=True)


def is_current(recorded: str, current: str) -> bool:
    """Whether a cache made under ``recorded`` still stands: same version, and no original present has changed
    (a cache outlives originals deleted after decoding)."""
    old, new = json.loads(recorded), json.loads(current)
    return old["version"] == new["version"] and all(old["files"].get(k) == v for k, v in new["files"].items())


def read_cache(stem: Path, sources: str) -> dict[str, np.ndarray] | None:
    """A decoded split: small arrays from ``stem.npz``, images memory-mapped from ``stem.npy``; None if stale."""
    try:
        with np.load(stem.with_suffix(".npz")) as meta:
            if not is_current(meta["sources"].item(), sources):
                return None
            arrays = {key: meta[key] for key in meta.files if key != "sources"}
        images = np.load(stem.with_suffix(".npy"), mmap_mode="r")
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):  # absent or damaged
        return None
    return {"images": images, **arrays} if len(images) == len(arrays.get("labels", ())) else None


def cached(stem: Path, version: int, originals: list[Path], build: Callable[[ImageAllocator], dict[str, np.ndarray]]
           ) -> dict[str, np.ndarray]:
    """The cache at ``stem``, built first when stale: ``build(allocate)`` fills the uint8 image array that
    ``allocate(shape)`` returns (a file-backed memmap, so a 10 GB set never sits in memory) and returns the
    small arrays (``labels``, ...). The image file is renamed into place complete, and the ``.npz`` that
    marks the pair current (keyed by ``version`` and the ``originals``, as built) is written last."""
    found = read_cache(stem, fingerprint(version, originals))
    if found is not None:
        return found
    arrays: dict[str, np.ndarray] = {}

    def write(tmp: Path) -> None:
        images: list[np.ndarray] = []

        def allocate(shape: tuple[int, ...]) -> np.ndarray:
            images.append(open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape))
            return images[-1]

        arrays.update(build(allocate))
        images.pop().flush()

    atomic_write(stem.with_suffix(".npy"), write)
    sources = fingerprint(version, originals)  # after build: it may have downloaded them
    atomic_save_npz(stem.with_suffix(".npz"), sources=np.array(sources), **arrays)
    return read_cache(stem, sources)


def resolve_size(requested: int | None, native: int) -> int:
    size = native if requested is None else int(requested)
    if size < 1:
        raise ValueError(f"image_size must be positive, got {requested}")
    return size


def cached_split(directory: Path, split: str, native: int, size: int, version: int, originals: list[Path],
                 build: Callable[[ImageAllocator], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """A split decoded by ``build`` at its ``native`` size into ``directory/cache``, then resized to ``size``
    (each size cached beside it, keyed by the same originals)."""
    arrays = cached(directory / "cache" / f"{split}_{native}px", version, originals, build)
    if size == native:
        return arrays

    def resize(allocate: ImageAllocator) -> dict[str, np.ndarray]:
        resize_into(arrays["images"], allocate((*arrays["images"].shape[:2], size, size)))
        return {key: value for key, value in arrays.items() if key != "images"}

    return cached(directory / "cache" / f"{split}_{size}px", version, originals, resize)
