"""Build steps: Go modules, Debian root filesystems, Docker images.

No release binary or image can be downloaded on the machines this harness targets, so the
kind node image and the tools are built from source: Go binaries from the Go module proxy
(golang.py), Debian root filesystems with debootstrap (rootfs.py), and images from those
(images.py). Each step takes
explicit inputs (versions, cache directory, log file) and returns a frozen `Built` record
(record.py) naming what it made, from what, and whether it was cached or built this time.
"""
