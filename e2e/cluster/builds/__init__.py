"""Build steps both providers share: Go modules, Debian root filesystems, Docker images.

No release binary or image can be downloaded on the machines this harness targets, so the
providers build what they run: Go binaries from the Go module proxy (golang.py), Debian root
filesystems with debootstrap (rootfs.py), and images from those (images.py). Each step takes
explicit inputs (versions, cache directory, log file) and returns a frozen `Built` record
(record.py) naming what it made, from what, and whether it was cached or built this time.
"""
