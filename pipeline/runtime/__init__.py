"""Worker runtime: lifecycle, health endpoint and an in-process supervisor."""

from __future__ import annotations

from pipeline.runtime.worker import BadMessage, ConsumerWorker, Health, Worker

__all__ = ["BadMessage", "ConsumerWorker", "Health", "Worker"]
