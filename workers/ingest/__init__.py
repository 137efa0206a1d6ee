"""Ingest: cameras (files, RTSP, GB/T 28181) into JPEG frames, recordings, camera status and the camera registry."""
