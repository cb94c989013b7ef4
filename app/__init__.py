"""Upgrade synchronization for Helm releases: the gate, the sample app and the hook."""
