"""Video quality diagnosis: per-frame measurements (:mod:`.measure`), per-camera fault episodes with a
learned baseline and hysteresis (:mod:`.diagnose`), and the same diagnosis over a video file (:mod:`.video`)."""
