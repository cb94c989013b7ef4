"""End-to-end harness: cluster providers, images, pinned tools and scenarios."""
