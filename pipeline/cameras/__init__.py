"""Cameras: the registry (one camera, one file) and stream URL credentials."""
