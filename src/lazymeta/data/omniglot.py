"""Omniglot (Lake et al. 2015): 1623 handwritten characters from 50 alphabets, 20 drawers each.

Lake's two official archives are decoded once into a bit-packed 105 px cache, and each image size
into its own uint8 cache, so later loads are one array read. Rotations (new classes in the
MAML/protonets protocol) are the episode sampler's job, not this module's.
"""
from __future__ import annotations

import io
import json
import logging
import os
import re
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from lazymeta.data.base import ImageClasses, ImageTransform
from lazymeta.data.download import DatasetError, Remote, atomic_save_npz, ensure_files

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test", "trainval", "background", "evaluation")
DEFAULT_SIZE = 28
FULL_SIZE = 105
DRAWERS = 20

_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
# md5 is what upstream users (torchvision) publish for these archives
REMOTES = {
    "background": Remote("images_background.zip", (_URL + "images_background.zip",),
                         md5="68d2efa1b9178cc56df9314c21c6e718"),
    "evaluation": Remote("images_evaluation.zip", (_URL + "images_evaluation.zip",),
                         md5="6b91aef0f799c5bb55b94e3f2daec811"),
}
_NUM_CHARACTERS = {"background": 964, "evaluation": 659}
_MEMBER = re.compile(r"images_(background|evaluation)/([^/]+)/(character\d\d)/(\d{4})_(\d\d)\.png")
_FULL_CACHE = "omniglot_105px.npz"
_CACHE_VERSION = 1

# The Vinyals et al. (2016) split used by MAML, Reptile and protonets: (alphabet, first, last character
# number), in the order of protonets' data/omniglot/splits/vinyals/*.txt (tests check it against them).
# Gurmukhi is the one alphabet split between two sets.
_VINYALS = {
    "train": (
        ("Angelic", 1, 20), ("Grantha", 1, 43), ("N_Ko", 1, 33), ("Aurek-Besh", 1, 26),
        ("Japanese_(hiragana)", 1, 52), ("Malay_(Jawi_-_Arabic)", 1, 40), ("Asomtavruli_(Georgian)", 1, 40),
        ("Sanskrit", 1, 42), ("Ojibwe_(Canadian_Aboriginal_Syllabics)", 1, 14), ("Korean", 1, 40),
        ("Arcadian", 1, 26), ("Greek", 1, 24), ("Alphabet_of_the_Magi", 1, 20),
        ("Blackfoot_(Canadian_Aboriginal_Syllabics)", 1, 14), ("Futurama", 1, 26), ("Gurmukhi", 1, 41),
        ("Tagalog", 1, 17), ("Anglo-Saxon_Futhorc", 1, 29), ("Braille", 1, 26), ("Cyrillic", 1, 33),
        ("Burmese_(Myanmar)", 1, 34), ("Avesta", 1, 26), ("Gujarati", 1, 48), ("Ge_ez", 1, 26),
        ("Syriac_(Estrangelo)", 1, 23), ("Atlantean", 1, 26), ("Japanese_(katakana)", 1, 47),
        ("Balinese", 1, 24), ("Atemayar_Qelisayer", 1, 26), ("Glagolitic", 1, 45), ("Tifinagh", 1, 55),
        ("Latin", 1, 26), ("Inuktitut_(Canadian_Aboriginal_Syllabics)", 1, 16),
    ),
    "val": (
        ("Hebrew", 1, 22), ("Mkhedruli_(Georgian)", 1, 41), ("Armenian", 1, 41), ("Early_Aramaic", 1, 22),
        ("Bengali", 1, 46),
    ),
    "test": (
        ("Gurmukhi", 42, 45), ("Kannada", 1, 41), ("Keble", 1, 26), ("Malayalam", 1, 47), ("Manipuri", 1, 40),
        ("Mongolian", 1, 30), ("Old_Church_Slavonic_(Cyrillic)", 1, 45), ("Oriya", 1, 46),
        ("Syriac_(Serto)", 1, 23), ("Sylheti", 1, 28), ("Tengwar", 1, 25), ("Tibetan", 1, 42),
        ("ULOG", 1, 26),
    ),
}


def vinyals_classes(split: str) -> tuple[str, ...]:
    """"Alphabet/characterNN" names of a Vinyals split, in protonets' order ("trainval" = train + val)."""
    parts = ("train", "val") if split == "trainval" else (split,)
    return tuple(f"{alphabet}/character{number:02d}" for part in parts
                 for alphabet, first, last in _VINYALS[part] for number in range(first, last + 1))


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    """One split as (N, 1, S, S) uint8 images, ink 255 on paper 0; classes are characters, groups alphabets.

    ``image_size`` defaults to 28; 105 gives the original pixels (inverted), uncached.
    """
    if split not in SPLITS:
        raise ValueError(f"Omniglot has no split {split!r}; choose one of {list(SPLITS)}")
    size = DEFAULT_SIZE if image_size is None else int(image_size)
    if size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    directory = Path(root) / "omniglot"
    with np.load(prepare(root, download)) as full:
        classes = tuple(str(name) for name in full["classes"])
        index = _split_index(split, classes, full["sets"], directory)
        rows = (index[:, None] * DRAWERS + np.arange(DRAWERS)).ravel()
        if size == FULL_SIZE:
            images = np.where(_unpack(full["ink"][rows]), np.uint8(255), np.uint8(0))
        else:
            images = _resized(directory, full, size)[rows]
    names = tuple(classes[i] for i in index)
    return ImageClasses(
        images=images[:, None],
        labels=np.repeat(np.arange(len(index)), DRAWERS),
        classes=names,
        transform=ImageTransform(size=size, channels=1, invert=True),
        groups=tuple(name.split("/")[0] for name in names),
    )


def prepare(root: str | os.PathLike, download: bool = False, verify: bool = True) -> Path:
    """Decode the archives in ``root/omniglot`` into the 105 px cache unless it is current; returns its path.

    The cache stays valid after the archives are deleted, and is rebuilt when they change.
    ``verify=False`` skips the md5 check, for archives rebuilt from another copy of the same images
    (same pixels, other bytes); their content (layout, counts, image size) is checked all the same.
    """
    directory = Path(root) / "omniglot"
    cache = directory / _FULL_CACHE
    if _is_current(cache, directory):
        return cache
    remotes = [REMOTES["background"], REMOTES["evaluation"]]
    if not verify:
        remotes = [replace(remote, md5=None) for remote in remotes]
    paths = ensure_files(remotes, directory, download)
    log.info("decoding the Omniglot archives in %s (once)", directory)
    parts = [_decode_archive(path, name) for path, name in zip(paths, ("background", "evaluation"))]
    atomic_save_npz(
        cache,
        ink=np.concatenate([part[0] for part in parts]),
        classes=np.array([name for part in parts for name in part[1]]),
        sets=np.array([name for name, part in zip(("background", "evaluation"), parts) for _ in part[1]]),
        sources=np.array(json.dumps({"version": _CACHE_VERSION, "archives": _fingerprints(directory)})),
    )
    return cache


def _fingerprints(directory: Path) -> dict[str, list[int]]:
    """Size and mtime of the archives present: enough to notice that they were replaced."""
    found = {}
    for remote in REMOTES.values():
        path = directory / remote.filename
        if path.exists():
            found[remote.filename] = [path.stat().st_size, path.stat().st_mtime_ns]
    return found


def _is_current(cache: Path, directory: Path) -> bool:
    """Whether the 105 px cache was made by this code from the archives present (if any are left)."""
    try:
        with np.load(cache) as data:
            recorded = json.loads(data["sources"].item())
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):  # absent or damaged
        return False
    return recorded.get("version") == _CACHE_VERSION and all(
        recorded["archives"].get(name) == fingerprint for name, fingerprint in _fingerprints(directory).items())


def _decode_archive(path: Path, set_name: str) -> tuple[np.ndarray, list[str]]:
    """Bit-packed ink (characters x drawers, 1379) in character-id order, and the class names."""
    packed, names = {}, {}
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                match = _MEMBER.fullmatch(info.filename)
                if match and match[1] == set_name:
                    char_id, drawer = int(match[4]), int(match[5])
                    names[char_id] = f"{match[2]}/{match[3]}"
                    packed[char_id, drawer] = _decode_png(archive.read(info), path, info.filename)
    except (zipfile.BadZipFile, zlib.error, EOFError) as error:
        raise DatasetError(f"{path} is not a valid zip archive ({error}); delete it and download it again "
                           f"from {REMOTES[set_name].urls[0]}") from error
    ids = sorted(names)
    expected = [(char_id, drawer) for char_id in ids for drawer in range(1, DRAWERS + 1)]
    if len(ids) != _NUM_CHARACTERS[set_name] or sorted(packed) != expected:
        raise DatasetError(f"{path} holds {len(ids)} characters and {len(packed)} images under "
                           f"images_{set_name}/, expected {_NUM_CHARACTERS[set_name]} characters x {DRAWERS} "
                           f"drawers; delete it and download it again from {REMOTES[set_name].urls[0]}")
    return np.stack([packed[key] for key in expected]), [names[char_id] for char_id in ids]


def _decode_png(data: bytes, archive: Path, member: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as image:
            paper = np.asarray(image.convert("L")) >= 128
    except OSError as error:
        raise DatasetError(f"{archive}: member {member} is not a readable PNG ({error}); "
                           f"delete the archive and download it again") from error
    if paper.shape != (FULL_SIZE, FULL_SIZE):
        raise DatasetError(f"{archive}: member {member} is {paper.shape[1]}x{paper.shape[0]} px, "
                           f"expected {FULL_SIZE}x{FULL_SIZE}; is this the official Omniglot archive?")
    return np.packbits(~paper)


def _unpack(ink: np.ndarray) -> np.ndarray:
    """Packed rows -> bool (N, 105, 105), True = ink."""
    pixels = FULL_SIZE * FULL_SIZE
    return np.unpackbits(ink, axis=1, count=pixels).view(bool).reshape(-1, FULL_SIZE, FULL_SIZE)


def _split_index(split: str, classes: tuple[str, ...], sets: np.ndarray, directory: Path) -> np.ndarray:
    """Class indices of ``split`` into the cache (character-id order for the official sets)."""
    if split in ("background", "evaluation"):
        return np.flatnonzero(sets == split)
    position = {name: i for i, name in enumerate(classes)}
    wanted = vinyals_classes(split)
    missing = [name for name in wanted if name not in position]
    if missing:
        raise DatasetError(f"{directory / _FULL_CACHE} lacks {len(missing)} classes of the Vinyals {split} split "
                           f"(e.g. {missing[0]}); are the archives the official ones? Delete it and load again.")
    return np.array([position[name] for name in wanted])


def _resized(directory: Path, full: np.lib.npyio.NpzFile, size: int) -> np.ndarray:
    """All images at ``size`` px (N, S, S), from the per-size cache, built (atomically) on first use.

    The cache is keyed by the 105 px cache's ``sources`` (code version and archive fingerprints).
    """
    cache = directory / f"omniglot_{size}px.npz"
    sources = full["sources"].item()
    try:
        with np.load(cache) as data:
            if data["sources"].item() == sources:
                return data["images"]
    except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile):  # absent or damaged
        pass
    log.info("resizing Omniglot to %d px (once)", size)
    images = _resize_all(full["ink"], size)
    atomic_save_npz(cache, images=images, sources=np.array(sources))
    return images


def _resize_all(ink: np.ndarray, size: int, chunk: int = 2048) -> np.ndarray:
    """Resize as :class:`ImageTransform` does (LANCZOS on the grayscale image), then invert."""
    out = np.empty((len(ink), size, size), np.uint8)
    for start in range(0, len(ink), chunk):  # unpack a chunk at a time: all of it would take 358 MB
        for row, ink_image in enumerate(_unpack(ink[start:start + chunk]), start):
            paper = Image.fromarray(np.where(ink_image, np.uint8(0), np.uint8(255)))
            out[row] = 255 - np.asarray(paper.resize((size, size), Image.Resampling.LANCZOS))
    return out
