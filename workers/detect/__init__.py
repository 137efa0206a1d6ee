"""The detect worker: frames → detector → per-camera tracker → detections, object crops, track summaries."""
