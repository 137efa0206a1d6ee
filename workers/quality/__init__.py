"""The quality worker: video quality diagnosis of every camera, recording-gap alerts and daily reports."""
