"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the original python batches, and the few-shot splits of
CIFAR-100: CIFAR-FS (Bertinetto et al. 2019) and FC100 (Oreshkin et al. 2018).

The batches are pickles, read with the restricted unpickler; their rows are already R, G, B planes of
32x32, i.e. (N, 3, 32, 32) without a transpose. The registry's ``cifar10``, ``cifar100``, ``cifar_fs``
and ``fc100`` modules are thin views of this one.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from lazymeta.data.base import ImageClasses, ImageTransform
from lazymeta.data.download import (
    DatasetError,
    Remote,
    ensure_file,
    ensure_files,
    safe_extract_tar,
)
from lazymeta.data.formats import (
    ImageAllocator,
    cached_split,
    entry,
    load_pickle,
    resolve_size,
)

NATIVE_SIZE = 32
_PIXELS = 3 * NATIVE_SIZE * NATIVE_SIZE
_VERSION = 1
_URL = "https://www.cs.toronto.edu/~kriz/"


@dataclass(frozen=True)
class CifarSet:
    """One original archive: its members (md5s as torchvision publishes) and the keys of its pickles."""

    name: str
    archive: Remote
    folder: str
    members: dict[str, tuple[tuple[str, str], ...]]  # split -> (member, md5) batches
    meta: tuple[str, str]
    label_key: str
    names_key: str

    def remotes(self, split: str) -> list[Remote]:
        """The extracted files ``split`` needs (their URL is the archive's)."""
        return [Remote(f"{self.folder}/{member}", self.archive.urls, md5=md5)
                for member, md5 in (*self.members[split], self.meta)]


CIFAR10 = CifarSet(
    name="cifar10",
    archive=Remote("cifar-10-python.tar.gz", (_URL + "cifar-10-python.tar.gz",),
                   md5="c58f30108f718f92721af3b95e74349a"),
    folder="cifar-10-batches-py",
    members={"train": (("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                       ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                       ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                       ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                       ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")),
             "test": (("test_batch", "40351d587109b95175f43aff81a1287e"),)},
    meta=("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
    label_key="labels",
    names_key="label_names",
)
CIFAR100 = CifarSet(
    name="cifar100",
    archive=Remote("cifar-100-python.tar.gz", (_URL + "cifar-100-python.tar.gz",),
                   md5="eb9058c3a382ffc7106e4002c42a8d85"),
    folder="cifar-100-python",
    members={"train": (("train", "16019d7e3df5f24257cddd939b257f8d"),),
             "test": (("test", "f0ef6b0ae62326f3e7ffdfab6717acfc"),)},
    meta=("meta", "7973b15100ade9c7d40fb424638fde48"),
    label_key="fine_labels",
    names_key="fine_label_names",
)
SETS = {s.name: s for s in (CIFAR10, CIFAR100)}

# Bertinetto et al.'s CIFAR-FS class split, in the order of torchmeta's cifar100/cifar-fs/*.json (the tests
# check it against them); images of a class come from both CIFAR-100 train and test (600 per class).
CIFAR_FS = {
    "train": tuple("dolphin seal aquarium_fish ray trout orchid sunflower tulip bottle bowl can cup plate apple "
                   "mushroom orange pear clock keyboard chair couch bee caterpillar cockroach bear lion tiger wolf "
                   "bridge castle house road skyscraper cloud forest mountain elephant kangaroo porcupine possum "
                   "raccoon skunk lobster spider boy girl dinosaur lizard snake turtle hamster mouse rabbit shrew "
                   "squirrel oak_tree palm_tree pine_tree willow_tree bus train lawn_mower streetcar tank".split()),
    "val": tuple("beaver otter flatfish shark lamp television beetle butterfly sea camel cattle crab crocodile "
                 "maple_tree motorcycle tractor".split()),
    "test": tuple("whale poppy rose sweet_pepper telephone bed table wardrobe leopard plain chimpanzee fox snail "
                  "worm baby man woman bicycle pickup_truck rocket".split()),
}
# Oreshkin et al.'s FC100 split of the 20 CIFAR-100 superclasses (torchmeta's cifar100/fc100/*.json).
FC100 = {
    "train": ("fish", "flowers", "food_containers", "fruit_and_vegetables", "household_electrical_devices",
              "household_furniture", "large_man-made_outdoor_things", "large_natural_outdoor_scenes", "reptiles",
              "trees", "vehicles_1", "vehicles_2"),
    "val": ("large_carnivores", "large_omnivores_and_herbivores", "non-insect_invertebrates", "small_mammals"),
    "test": ("aquatic_mammals", "insects", "medium_mammals", "people"),
}


def load(dataset: CifarSet, split: str, root: str | os.PathLike, download: bool = False,
         image_size: int | None = None) -> ImageClasses:
    """One original split (train/test) as (N, 3, S, S) uint8; CIFAR-100's groups are its superclasses."""
    if split not in dataset.members:
        raise ValueError(f"{dataset.name} has no split {split!r}; choose one of {list(dataset.members)}")
    arrays = _arrays(dataset, split, Path(root) / dataset.name, download, resolve_size(image_size, NATIVE_SIZE))
    return _classes(arrays, arrays["labels"], np.arange(len(arrays["classes"])))


def load_few_shot(protocol: str, split: str, root: str | os.PathLike, download: bool = False,
                  image_size: int | None = None) -> ImageClasses:
    """A CIFAR-FS (``protocol="cifar_fs"``) or FC100 (``"fc100"``) split: its classes' 600 images each."""
    table = {"cifar_fs": CIFAR_FS, "fc100": FC100}[protocol]
    if split not in table:
        raise ValueError(f"{protocol} has no split {split!r}; choose one of {list(table)}")
    size = resolve_size(image_size, NATIVE_SIZE)
    parts = [_arrays(CIFAR100, part, Path(root) / CIFAR100.name, download, size) for part in ("train", "test")]
    classes, groups = parts[0]["classes"].tolist(), parts[0]["groups"].tolist()
    if protocol == "cifar_fs":
        chosen = np.array([classes.index(name) for name in CIFAR_FS[split]])
    else:
        chosen = np.array([c for group in FC100[split] for c in range(len(classes)) if groups[c] == group])
    new_label = np.full(len(classes), -1)
    new_label[chosen] = np.arange(len(chosen))
    rows = [np.flatnonzero(new_label[part["labels"]] >= 0) for part in parts]
    merged = {**parts[0], "images": np.concatenate([part["images"][r] for part, r in zip(parts, rows)])}
    labels = np.concatenate([new_label[part["labels"][r]] for part, r in zip(parts, rows)])
    return _classes(merged, labels, chosen)


def prepare(dataset: CifarSet, root: str | os.PathLike, download: bool = False, verify: bool = True) -> None:
    """Decode both splits into the cache. ``verify=False`` skips the md5s, for batches rebuilt elsewhere (other
    bytes); their structure is checked all the same."""
    for split in dataset.members:
        _arrays(dataset, split, Path(root) / dataset.name, download, NATIVE_SIZE, verify)


def _classes(arrays: dict[str, np.ndarray], labels: np.ndarray, chosen: np.ndarray) -> ImageClasses:
    groups = arrays["groups"][chosen].tolist() if "groups" in arrays else ()
    return ImageClasses(images=arrays["images"], labels=labels, classes=tuple(arrays["classes"][chosen].tolist()),
                        transform=ImageTransform(size=arrays["images"].shape[-1], channels=3), groups=tuple(groups))


def _arrays(dataset: CifarSet, split: str, directory: Path, download: bool, size: int,
            verify: bool = True) -> dict[str, np.ndarray]:
    remotes = [remote if verify else replace(remote, md5=None) for remote in dataset.remotes(split)]

    def build(allocate: ImageAllocator) -> dict[str, np.ndarray]:
        *batches, meta = _extracted(dataset, remotes, directory, download, verify)
        meta_content = load_pickle(meta)
        names = entry(meta_content, dataset.names_key, meta)
        contents = [_batch(path, dataset.label_key, len(names)) for path in batches]
        images = allocate((sum(len(labels) for _, labels, _ in contents), 3, NATIVE_SIZE, NATIVE_SIZE))
        np.concatenate([data for data, _, _ in contents], out=images.reshape(len(images), _PIXELS))
        labels = np.concatenate([labels for _, labels, _ in contents])
        arrays = {"labels": labels, "classes": np.array(names)}
        if dataset is CIFAR100:
            coarse = np.concatenate([coarse for _, _, coarse in contents])
            coarse_names = entry(meta_content, "coarse_label_names", meta)
            by_class = np.zeros(len(names), np.int64)
            by_class[labels] = coarse
            arrays["groups"] = np.array(coarse_names)[by_class]
        return arrays

    originals = [directory / remote.filename for remote in remotes]
    return cached_split(directory, split, NATIVE_SIZE, size, _VERSION, originals, build)


def _extracted(dataset: CifarSet, remotes: list[Remote], directory: Path, download: bool,
               verify: bool) -> list[Path]:
    """The split's batch files, extracted from the archive first when they are not all there."""
    if not all((directory / remote.filename).exists() for remote in remotes):
        archive = dataset.archive if verify else replace(dataset.archive, md5=None)
        safe_extract_tar(ensure_file(archive, directory, download), directory)
    return ensure_files(remotes, directory)


def _batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(rows uint8 (n, 3072), labels, CIFAR-100 coarse labels or None) of one batch, checked."""
    batch = load_pickle(path)
    data = entry(batch, "data", path)
    labels = np.asarray(entry(batch, label_key, path))
    coarse = np.asarray(entry(batch, "coarse_labels", path)) if label_key == "fine_labels" else None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.shape == (len(labels), _PIXELS)
            and labels.ndim == 1 and np.all((0 <= labels) & (labels < num_classes))
            and (coarse is None or coarse.shape == labels.shape)):
        shape = getattr(data, "shape", type(data).__name__)
        raise DatasetError(f"{path}: 'data' is {shape} for {len(labels)} labels, expected uint8 (n, {_PIXELS}) "
                           f"and n labels below {num_classes}; is this an original CIFAR batch?")
    return data, labels.astype(np.int64), coarse

