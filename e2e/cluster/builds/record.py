"""What a build step made: a frozen record, keyed by the recipe it was made from.

A recipe is a small dict of everything an artifact is made from (versions, flags, a source
hash); its key is a short hash of that dict. A binary carries its key in a stamp file beside
it, an image in its tag or tarball name: a step whose key matches reuses the artifact, and a
changed recipe builds a new one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Built:
    """One artifact of a build step."""

    name: str
    path: Path  # binary, tarball or directory; for an image only in Docker: its recipe's file
    version: str
    key: str
    how: str  # "cached", "built", "loaded", ...
    ref: str = ""  # the image reference, for images


def recipe_key(recipe: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def stamp_path(artifact: Path) -> Path:
    return artifact.with_name(f".{artifact.name}.stamp")


def is_stamped(artifact: Path, key: str) -> bool:
    stamp = stamp_path(artifact)
    return artifact.exists() and stamp.is_file() and stamp.read_text().strip() == key


def write_stamp(artifact: Path, key: str) -> None:
    stamp_path(artifact).write_text(key + "\n")
