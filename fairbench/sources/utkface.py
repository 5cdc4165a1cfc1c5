"""UTKFace aligned face crops (Zhang, Song, Qi, CVPR 2017), race from the dataset's own file names.

UTKFace names each crop `age_gender_race_datetime.jpg.chip.jpg` (race 0 White, 1 Black, 2 Asian, 3 Indian,
4 Others), and a user's copy has the known flaws of the public one: names that do not parse, and groups of
pixel-identical images, some with conflicting race labels. Neither may crash a load or mislabel an image, so:

- a malformed name (or an unreadable JPEG) is skipped and counted;
- identical decoded pixels (sha256 of the RGB array) form a duplicate group: one copy is kept (the first by
  file name) when every copy has the same race, and *all* copies are dropped when their races conflict,
  since no rule can tell which label is right;
- what was skipped is counted in `RawPart.info` and printed once per process on stderr.

Faces are resized to the source's size (bilinear, antialiased, as every task here is) and the decoded arrays
cached as `.npz` under `$FAIRBENCH_HOME/cache/utkface/`, keyed by a hash of the file names and bytes, so a
second load reads one file instead of decoding ~10k JPEGs.

The one part, `all`, is ordered for stratified slicing: images are shuffled within each race (seeded by
`ORDER_SEED`) and interleaved so that image k of race g sits at relative position (k + 1/2) / n_g. Every
contiguous slice therefore holds each race within two images of its share of the whole, and a task's
train / judge / test slices are seeded, stratified splits in which every race appears.
"""

from __future__ import annotations

import hashlib
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fairbench import atomic, paths
from fairbench.errors import FairbenchError
from fairbench.sources.base import SOURCES, RawPart, resize_uint8

RACES = ("White", "Black", "Asian", "Indian", "Others")
NAME_PATTERN = re.compile(r"^(\d{1,3})_([01])_([0-4])_(\d+)\.jpg\.chip\.jpg$")
ORDER_SEED = 20261203
# Bump when the decoding, dedup or resize rule changes: old cache files then stop matching.
CACHE_VERSION = "utkface-cache/1"
# Folders searched under the data root, in order: the official crop_part1 part (what the task's slices are
# sized for), then the full aligned-and-cropped set extracted as UTKFace/.
LAYOUTS = ("UTKFace/crop_part1", "crop_part1", "UTKFace")


@dataclass(frozen=True)
class FaceRecord:
    name: str
    age: int
    gender: int
    race: int


def parse_name(name: str) -> FaceRecord | None:
    """The labels in a UTKFace file name, or None when the name does not follow the dataset's pattern."""
    match = NAME_PATTERN.match(name)
    if match is None:
        return None
    return FaceRecord(name=name, age=int(match[1]), gender=int(match[2]), race=int(match[3]))


def find_folder(root: Path) -> Path:
    for layout in LAYOUTS:
        folder = root / layout
        if folder.is_dir() and any(folder.glob("*.jpg")):
            return folder
    raise FairbenchError(
        f"UTKFace not found under {root}: place the aligned crops (crop_part1/ or the full UTKFace/ folder, "
        f"files named age_gender_race_datetime.jpg.chip.jpg) at {root}/UTKFace/crop_part1/ or {root}/UTKFace/, "
        f"or pass --data-root / set FAIRBENCH_DATA (UTKFace is for non-commercial research only)"
    )


@dataclass(frozen=True)
class Decoded:
    """The cleaned dataset in file-name order, with the counts of what was left out."""

    images: np.ndarray  # uint8 N x 3 x size x size
    races: np.ndarray  # int64
    genders: np.ndarray
    ages: np.ndarray
    names: np.ndarray  # unicode
    info: dict[str, Any]


def decode_folder(folder: Path, size: int) -> Decoded:
    """Parse, decode, deduplicate and resize every `*.jpg` in `folder` (no cache)."""
    from PIL import Image

    files = sorted(p.name for p in folder.glob("*.jpg"))
    malformed, unreadable = [], []
    records, small, digests = [], [], []
    for name in files:
        record = parse_name(name)
        if record is None:
            malformed.append(name)
            continue
        try:
            with Image.open(folder / name) as img:
                rgb = np.asarray(img.convert("RGB"))
        except (OSError, ValueError):
            unreadable.append(name)
            continue
        records.append(record)
        # Hash the full decoded pixels, keep only the resized copy: ~10k full-size faces would take ~1 GB.
        digests.append(hashlib.sha256(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest())
        small.append(resize_uint8(np.ascontiguousarray(rgb.transpose(2, 0, 1)[None]), size, size)[0])
    keep, dedup = dedup_by_pixels(digests, [r.race for r in records], [(r.age, r.gender) for r in records])
    kept = [records[i] for i in keep]
    images = np.stack([small[i] for i in keep]) if keep else np.zeros((0, 3, size, size), dtype=np.uint8)
    races_before = np.bincount([r.race for r in records], minlength=len(RACES))
    races = np.array([r.race for r in kept], dtype=np.int64)
    info = {
        "folder": str(folder),
        "files": len(files),
        "malformed_names": len(malformed),
        "malformed_examples": malformed[:5],
        "unreadable": len(unreadable),
        "unreadable_examples": unreadable[:5],
        **dedup,
        "kept": len(kept),
        "race_counts_before_dedup": races_before.tolist(),
        "race_counts": np.bincount(races, minlength=len(RACES)).tolist(),
    }
    return Decoded(
        images=images,
        races=races,
        genders=np.array([r.gender for r in kept], dtype=np.int64),
        ages=np.array([r.age for r in kept], dtype=np.int64),
        names=np.array([r.name for r in kept], dtype=np.str_),
        info=info,
    )


def dedup_by_pixels(
    digests: list[str], races: list[int], others: list[tuple[int, ...]] | None = None
) -> tuple[list[int], dict[str, int]]:
    """Indices to keep (in input order) and the counts: one copy of an agreeing duplicate group is kept (its
    first), every copy of a group whose race labels conflict is dropped. `others` (age, gender) only counts
    the agreeing groups whose other labels differ: the task does not use them, so they drop nothing."""
    groups: dict[str, list[int]] = {}
    for i, digest in enumerate(digests):
        groups.setdefault(digest, []).append(i)
    drop: set[int] = set()
    counts = {"duplicate_groups_agreeing": 0, "duplicate_copies_dropped": 0,
              "duplicate_groups_conflicting": 0, "conflicting_images_dropped": 0,
              "duplicate_groups_agreeing_race_other_labels_differ": 0}
    for members in groups.values():
        if len(members) < 2:
            continue
        if len({races[i] for i in members}) == 1:
            counts["duplicate_groups_agreeing"] += 1
            counts["duplicate_copies_dropped"] += len(members) - 1
            if others is not None and len({others[i] for i in members}) > 1:
                counts["duplicate_groups_agreeing_race_other_labels_differ"] += 1
            drop.update(members[1:])
        else:
            counts["duplicate_groups_conflicting"] += 1
            counts["conflicting_images_dropped"] += len(members)
            drop.update(members)
    return [i for i in range(len(digests)) if i not in drop], counts


def stratified_order(races: np.ndarray, seed: int = ORDER_SEED) -> np.ndarray:
    """A permutation in which every contiguous slice holds each race within two images of its share."""
    keys = np.zeros(len(races), dtype=np.float64)
    for race in np.unique(races):
        members = np.flatnonzero(races == race)
        shuffled = np.random.default_rng([seed, int(race)]).permutation(members)
        keys[shuffled] = (np.arange(len(members)) + 0.5) / len(members)
    return np.lexsort((races, keys))  # ties (equal relative positions) broken by race


def content_key(folder: Path, size: int) -> str:
    """sha256 over the rules' version, the size, every file name and every file's bytes."""
    digest = hashlib.sha256(f"{CACHE_VERSION}|{size}".encode())
    for path in sorted(folder.glob("*.jpg")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _cache_path(key: str) -> Path:
    return paths.fairbench_home() / "cache" / "utkface" / f"{key}.npz"


def _write_cache(path: Path, decoded: Decoded) -> None:
    import json

    def writer(fh) -> None:
        np.savez(fh, images=decoded.images, races=decoded.races, genders=decoded.genders, ages=decoded.ages,
                 names=decoded.names, info=np.array(json.dumps(decoded.info)))

    atomic.write_with(path, writer)


def _read_cache(path: Path) -> Decoded | None:
    import json

    try:
        with np.load(path, allow_pickle=False) as z:
            return Decoded(images=z["images"], races=z["races"], genders=z["genders"], ages=z["ages"],
                           names=z["names"], info=json.loads(str(z["info"])))
    except (OSError, ValueError, KeyError):
        return None  # a damaged cache file is rebuilt, never trusted


_ANNOUNCED: set[str] = set()


def load_faces(root: Path, size: int) -> Decoded:
    """The cleaned faces under `root`, from the cache when the files are unchanged."""
    folder = find_folder(root)
    key = content_key(folder, size)
    path = _cache_path(key)
    decoded = _read_cache(path) if path.is_file() else None
    if decoded is None:
        decoded = decode_folder(folder, size)
        _write_cache(path, decoded)
    decoded = Decoded(**{**decoded.__dict__, "info": {**decoded.info, "content_sha256": key}})
    if key not in _ANNOUNCED:
        _ANNOUNCED.add(key)
        print(f"note: {summary_line(decoded.info)}", file=sys.stderr)
    return decoded


def summary_line(info: dict[str, Any]) -> str:
    mix = "/".join(str(n) for n in info["race_counts"])
    return (
        f"UTKFace {info['folder']}: {info['kept']} of {info['files']} images kept; skipped "
        f"{info['malformed_names']} malformed names, {info['unreadable']} unreadable, "
        f"{info['duplicate_copies_dropped']} copies in {info['duplicate_groups_agreeing']} agreeing duplicate "
        f"groups, {info['conflicting_images_dropped']} images in {info['duplicate_groups_conflicting']} "
        f"duplicate groups with conflicting race; race mix {'/'.join(RACES)} = {mix}"
    )


class UTKFaceSource:
    """UTKFace at `size` x `size`, labels = race, one part `all` in seeded stratified order."""

    def __init__(self, size: int) -> None:
        self.size = size

    def load(self, part: str, root: Path) -> RawPart:
        if part != "all":
            raise FairbenchError(f"utkface has one part, 'all' (slices of it are stratified); the task asks for {part!r}")
        decoded = load_faces(Path(root), self.size)
        order = stratified_order(decoded.races)
        info = {**decoded.info, "order_seed": ORDER_SEED, "size": self.size}
        return RawPart(images=decoded.images[order], labels=decoded.races[order], info=info)


SOURCES.register("utkface-32", UTKFaceSource(32))
