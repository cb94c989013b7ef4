"""What both providers lay out alike, under their cache and their runtime directory.

Each provider's settings (``local/settings.py``, ``kind/settings.py``) is a frozen dataclass
with a ``cache`` (kept across `down`) and a ``run_dir`` (removed by `down`); this mixin adds
the paths and names they share: PID files, our dockerd's socket and exec root, the image
archives, and the app's base image (built once, the same for both).
"""

from __future__ import annotations

from pathlib import Path

# debootstrap bookworm with python3 (e2e/builds/images.py ensure_debian_image).
BASE_IMAGE = "upgrade-gate/debian-python:bookworm"


class ProviderLayout:
    cache: Path
    run_dir: Path

    @property
    def images_dir(self) -> Path:
        return self.cache / "images"

    @property
    def pids_dir(self) -> Path:
        return self.run_dir / "pids"

    @property
    def docker_socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def docker_exec_root(self) -> Path:
        return self.run_dir / "docker"

    @property
    def base_image(self) -> str:
        """The app's base image where no registry is reached (debootstrap + python3)."""
        return BASE_IMAGE
