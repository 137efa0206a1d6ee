"""The quality worker: video quality diagnosis of every camera, recording-gap alerts; the scheduled daily reports (run beside the API)."""
