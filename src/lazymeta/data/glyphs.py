"""Glyphs: an Omniglot-like few-shot dataset rendered from the fonts matplotlib ships.

It is the embedded default dataset: it needs no download, so tests, examples and first runs work
offline. A class is one Unicode character drawn by at least ``MIN_FACES`` of the DejaVu/STIX text
faces; its instances are those faces under random affine and stroke-width distortions, like
different people drawing the same character. Unicode blocks play the role of Omniglot's alphabets:
the train/val/test split is by block, so evaluation characters come from unseen "alphabets".

Everything is seeded per code point, so the arrays are bit-identical wherever the same font files
(and Pillow's FreeType) are used; they are generated once per image size into the data cache.
"""
from __future__ import annotations

import math
import os
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib import ft2font
from PIL import Image, ImageDraw, ImageFont

from lazymeta.infra.files import atomic_write
from lazymeta.data.base import ImageClasses, ImageTransform

SPLITS = ("train", "val", "test")
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}  # of the classes
INSTANCES = 20  # drawings per character, as in Omniglot
MIN_FACES = 8  # a character drawn by fewer faces has too little genuine style variation
IMAGE_SIZE = 28
CANVAS = 64  # render size before the LANCZOS downsample (at least; larger for large image_size)
FIT = 0.7  # share of the canvas the glyph's larger side fills before distortion
# Half-ranges of the uniform distortions: rotation (radians), shear, scale, stretch (x against y),
# shift x and y (fractions of the canvas); and the ink threshold of the stroke change (centre, half-range).
SPREAD = (math.radians(8), 0.15, 0.1, 0.1, 0.03, 0.03)
STROKE = (112, 48)  # on the 0..255 ink scale
SEED = 1234
VERSION = 1  # bump when rendering changes: it names the cache file

# The text faces; the Display, STIXSize*, STIXNonUni and Computer Modern fonts hold few or no
# text characters (or non-Unicode encodings) and LastResort draws placeholder boxes.
FACES = tuple(
    f"{family}{style}.ttf"
    for family, styles in (
        ("DejaVuSans", ("", "-Bold", "-Oblique", "-BoldOblique")),
        ("DejaVuSerif", ("", "-Bold", "-Italic", "-BoldItalic")),
        ("DejaVuSansMono", ("", "-Bold", "-Oblique", "-BoldOblique")),
        ("STIXGeneral", ("", "Bol", "Italic", "BolIta")),
    )
    for style in styles
)

# Unicode blocks (first, last, name) the faces cover; characters outside them are not used.
BLOCKS = (
    (0x0000, 0x007F, "Basic Latin"),
    (0x0080, 0x00FF, "Latin-1 Supplement"),
    (0x0100, 0x017F, "Latin Extended-A"),
    (0x0180, 0x024F, "Latin Extended-B"),
    (0x0250, 0x02AF, "IPA Extensions"),
    (0x02B0, 0x02FF, "Spacing Modifier Letters"),
    (0x0370, 0x03FF, "Greek and Coptic"),
    (0x0400, 0x04FF, "Cyrillic"),
    (0x0500, 0x052F, "Cyrillic Supplement"),
    (0x0530, 0x058F, "Armenian"),
    (0x0E80, 0x0EFF, "Lao"),
    (0x10A0, 0x10FF, "Georgian"),
    (0x1D00, 0x1D7F, "Phonetic Extensions"),
    (0x1D80, 0x1DBF, "Phonetic Extensions Supplement"),
    (0x1E00, 0x1EFF, "Latin Extended Additional"),
    (0x1F00, 0x1FFF, "Greek Extended"),
    (0x2000, 0x206F, "General Punctuation"),
    (0x2070, 0x209F, "Superscripts and Subscripts"),
    (0x20A0, 0x20CF, "Currency Symbols"),
    (0x2100, 0x214F, "Letterlike Symbols"),
    (0x2150, 0x218F, "Number Forms"),
    (0x2190, 0x21FF, "Arrows"),
    (0x2200, 0x22FF, "Mathematical Operators"),
    (0x2300, 0x23FF, "Miscellaneous Technical"),
    (0x2400, 0x243F, "Control Pictures"),
    (0x2460, 0x24FF, "Enclosed Alphanumerics"),
    (0x2500, 0x257F, "Box Drawing"),
    (0x2580, 0x259F, "Block Elements"),
    (0x25A0, 0x25FF, "Geometric Shapes"),
    (0x2600, 0x26FF, "Miscellaneous Symbols"),
    (0x2700, 0x27BF, "Dingbats"),
    (0x27C0, 0x27EF, "Miscellaneous Mathematical Symbols-A"),
    (0x27F0, 0x27FF, "Supplemental Arrows-A"),
    (0x2800, 0x28FF, "Braille Patterns"),
    (0x2900, 0x297F, "Supplemental Arrows-B"),
    (0x2980, 0x29FF, "Miscellaneous Mathematical Symbols-B"),
    (0x2A00, 0x2AFF, "Supplemental Mathematical Operators"),
    (0x2B00, 0x2BFF, "Miscellaneous Symbols and Arrows"),
    (0x2C60, 0x2C7F, "Latin Extended-C"),
    (0x2D00, 0x2D2F, "Georgian Supplement"),
    (0x2E00, 0x2E7F, "Supplemental Punctuation"),
    (0xA640, 0xA69F, "Cyrillic Extended-B"),
    (0xA700, 0xA71F, "Modifier Tone Letters"),
    (0xA720, 0xA7FF, "Latin Extended-D"),
    (0xFB00, 0xFB4F, "Alphabetic Presentation Forms"),
)


def font_paths() -> list[Path]:
    """The face files, from matplotlib's bundled font directory."""
    directory = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf"
    return [directory / name for name in FACES]


def fingerprint() -> str:
    """Names and sizes of the face files: a changed matplotlib font set invalidates the cache."""
    return ";".join(f"{path.name}:{path.stat().st_size}" for path in font_paths())


def block_of(code_point: int) -> str | None:
    """The Unicode block (the "alphabet") of a character, None outside :data:`BLOCKS`."""
    for first, last, name in BLOCKS:
        if first <= code_point <= last:
            return name
    return None


def _charmaps() -> list[frozenset[int]]:
    """The code points each face maps: FreeType would otherwise draw a .notdef box for the rest."""
    return [frozenset(ft2font.FT2Font(str(path)).get_charmap()) for path in font_paths()]


def _fonts(em: int) -> list[ImageFont.FreeTypeFont]:
    # BASIC layout: single characters need no shaping, and Raqm is not on every machine.
    return [ImageFont.truetype(str(path), em, layout_engine=ImageFont.Layout.BASIC) for path in font_paths()]


def _glyph(font: ImageFont.FreeTypeFont, character: str) -> Image.Image | None:
    """The undistorted render (ink 255) cropped to its ink, None when it leaves no ink."""
    left, top, right, bottom = font.getbbox(character)
    if right <= left or bottom <= top:
        return None
    image = Image.new("L", (right - left, bottom - top))
    ImageDraw.Draw(image).text((-left, -top), character, fill=255, font=font)
    box = image.getbbox()
    return image.crop(box) if box else None


def _glyphs(code_point: int, fonts: list[ImageFont.FreeTypeFont], charmaps: list[frozenset[int]]
            ) -> list[Image.Image | None]:
    """One render per face, None for faces without the character or without ink."""
    return [_glyph(font, chr(code_point)) if code_point in charmap else None
            for font, charmap in zip(fonts, charmaps)]


def _thumbnail(glyph: Image.Image) -> bytes:
    """The render fitted to 16 px and binarised: what two look-alike characters share."""
    return np.packbits(np.asarray(_pad(glyph, 16)) >= 128).tobytes()


def _pad(glyph: Image.Image, side: int) -> Image.Image:
    """``ImageOps.pad(glyph, (side, side), BOX)`` as Pillow 13 computes it. Older Pillows raise on a
    render that fits in less than one pixel across (a thin rule); Pillow 13 pads an empty one."""
    w, h = glyph.size
    size = (side, round(h / w * side)) if w > h else (round(w / h * side), side)
    out = Image.new(glyph.mode, (side, side))
    if min(size) > 0:
        out.paste(glyph.resize(size, Image.Resampling.BOX), (round((side - size[0]) / 2), round((side - size[1]) / 2)))
    return out


def _candidates(charmaps: list[frozenset[int]]) -> list[int]:
    """Visible characters of the known blocks mapped by at least MIN_FACES faces."""
    counts = Counter(code_point for charmap in charmaps for code_point in charmap)
    return sorted(code_point for code_point, count in counts.items()
                  if count >= MIN_FACES and block_of(code_point) is not None
                  and unicodedata.category(chr(code_point))[0] not in "CZM")  # control, space, mark


def select_code_points() -> list[int]:
    """The classes: candidates that leave ink in at least MIN_FACES faces, minus look-alikes that
    draw like a lower code point in MIN_FACES faces once fitted to the box (Latin H and Greek Eta,
    Roman numeral one and I, the braille dots): the same class under two labels."""
    charmaps, fonts = _charmaps(), _fonts(CANVAS)
    selected, drawers = [], defaultdict(list)  # (face, thumbnail) -> selected code points
    for code_point in _candidates(charmaps):
        keys = [(face, _thumbnail(glyph)) for face, glyph in enumerate(_glyphs(code_point, fonts, charmaps))
                if glyph is not None]
        same = Counter(other for key in keys for other in drawers[key])
        if len(keys) >= MIN_FACES and max(same.values(), default=0) < MIN_FACES:
            selected.append(code_point)
            for key in keys:
                drawers[key].append(code_point)
    return selected


def _distort(glyph: Image.Image, canvas: int, rotation: float, shear: float, scale: float, stretch: float,
             shift_x: float, shift_y: float) -> Image.Image:
    """The glyph fitted to FIT of a square canvas, then rotated, sheared, scaled, stretched (x
    against y) and shifted (fractions of the canvas) about the canvas centre."""
    width, height = glyph.size
    fit = FIT * canvas / max(width, height) * (1 + scale)
    sx, sy = fit * (1 + stretch), fit * (1 - stretch)
    cos, sin = math.cos(rotation), math.sin(rotation)
    # The forward map rotate @ shear @ scale, as [[a, b], [c, d]].
    a, b, c, d = cos * sx, (cos * shear - sin) * sy, sin * sx, (sin * shear + cos) * sy
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det  # PIL wants the output -> input map
    cx, cy = canvas * (0.5 + shift_x), canvas * (0.5 + shift_y)
    matrix = (ia, ib, width / 2 - ia * cx - ib * cy, ic, id_, height / 2 - ic * cx - id_ * cy)
    return glyph.transform((canvas, canvas), Image.Transform.AFFINE, matrix, Image.Resampling.BILINEAR)


def _instances(code_point: int, glyphs: list[Image.Image | None], size: int) -> np.ndarray:
    """INSTANCES drawings of one character, uint8 (INSTANCES, size, size), cycling over its faces."""
    faces = [glyph for glyph in glyphs if glyph is not None]
    noise = np.random.default_rng([SEED, code_point]).uniform(-1.0, 1.0, (INSTANCES, len(SPREAD) + 1))
    canvas = max(CANVAS, size)
    images = np.stack([
        np.asarray(_distort(faces[i % len(faces)], canvas, *(noise[i, :-1] * SPREAD))
                   .resize((size, size), Image.Resampling.LANCZOS))
        for i in range(INSTANCES)])
    return _stroke(images, noise[:, -1])


def _stroke(images: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Thicken or thin the strokes by re-thresholding the anti-aliased edges: a lower threshold
    takes more of each edge into the ink. Each image is first stretched to full ink so that thinning
    never erases faint hairlines. Integer arithmetic keeps this step bit-identical everywhere."""
    images = images.astype(np.int32)
    images = images * 255 // np.maximum(images.max(axis=(1, 2), keepdims=True), 1)
    thresholds = np.rint(STROKE[0] + STROKE[1] * noise).astype(np.int32)[:, None, None]
    return np.clip((images - thresholds) * 2 + 128, 0, 255).astype(np.uint8)


def render(code_points: list[int], image_size: int = IMAGE_SIZE) -> np.ndarray:
    """The drawings of the given characters, uint8 (len(code_points), INSTANCES, size, size)."""
    charmaps, fonts = _charmaps(), _fonts(max(CANVAS, image_size))
    return np.stack([_instances(code_point, _glyphs(code_point, fonts, charmaps), image_size)
                     for code_point in code_points])


def assign_splits(groups: list[str]) -> dict[str, str]:
    """Whole blocks to splits, largest block first, each to the split furthest below its share of
    classes: deterministic, and close to SPLIT_FRACTIONS whatever the fonts cover."""
    sizes = Counter(groups)
    filled = dict.fromkeys(SPLITS, 0)
    splits = {}
    for group in sorted(sizes, key=lambda name: (-sizes[name], name)):
        split = max(SPLITS, key=lambda s: SPLIT_FRACTIONS[s] * len(groups) - filled[s])
        splits[group] = split
        filled[split] += sizes[group]
    return splits


def generate(image_size: int = IMAGE_SIZE) -> dict[str, np.ndarray]:
    """All classes of all splits: the arrays of the cache file."""
    code_points = select_code_points()
    groups = [block_of(code_point) for code_point in code_points]
    split_of = assign_splits(groups)
    images = render(code_points, image_size)
    return {
        "images": images.reshape(-1, 1, image_size, image_size),
        "labels": np.repeat(np.arange(len(code_points), dtype=np.int64), INSTANCES),
        "classes": np.array([f"U+{code_point:04X} {chr(code_point)}" for code_point in code_points]),
        "groups": np.array(groups),
        "splits": np.array([split_of[group] for group in groups]),
        "fingerprint": np.array(fingerprint()),
    }


def _cached(root: Path, image_size: int) -> dict[str, np.ndarray]:
    """The cache file's arrays, generated first when missing or made from other font files."""
    path = root / "glyphs" / f"glyphs_{image_size}_v{VERSION}.npz"
    if path.exists():
        with np.load(path) as cache:
            if str(cache["fingerprint"]) == fingerprint():
                return dict(cache)
    arrays = generate(image_size)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:  # a file object: np.savez_compressed would append ".npz" to a path
            np.savez_compressed(file, **arrays)

    atomic_write(path, write)  # an interrupted or concurrent run never leaves half a cache file
    return arrays


def load(split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    """One split, its labels renumbered 0..C-1 in code point order.

    ``download`` is ignored: the images are rendered from fonts installed with matplotlib, so
    there is nothing to fetch; the first call per image size generates the cache under ``root``.
    """
    if split not in SPLITS:
        raise ValueError(f"glyphs has no split {split!r}; choose one of {list(SPLITS)}")
    image_size = IMAGE_SIZE if image_size is None else image_size
    arrays = _cached(Path(root), image_size)
    chosen = np.flatnonzero(arrays["splits"] == split)
    new_label = np.full(len(arrays["classes"]), -1, dtype=np.int64)
    new_label[chosen] = np.arange(len(chosen))
    keep = new_label[arrays["labels"]] >= 0
    return ImageClasses(
        images=arrays["images"][keep],
        labels=new_label[arrays["labels"][keep]],
        classes=tuple(arrays["classes"][chosen].tolist()),
        transform=ImageTransform(size=image_size, channels=1, invert=True),
        groups=tuple(arrays["groups"][chosen].tolist()),
    )
