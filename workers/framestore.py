"""Frame store worker: keeps analysed frames as JPEG stills in the object store.

Consumes ``tubeline.frames.v1`` and writes each frame to
``frames/{camera}/{YYYY-MM-DD}/{session}/{sequence:09d}.jpg`` with its header fields as
object metadata. The key comes from the frame's stable identity, so a redelivered
frame overwrites the same object. A message without valid frame headers or whose
value is not a JPEG goes to ``tubeline.frames.v1.dlq`` with the reason.

Delivery: at-least-once (see :class:`pipeline.runtime.ConsumerWorker`).
"""

from __future__ import annotations

import logging
from typing import ClassVar

from pipeline.bus.base import Message
from pipeline.runtime.worker import BadMessage, ConsumerWorker
from schemas.frames import FrameHeader
from schemas.topics import FRAMES

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"


def frame_key(header: FrameHeader) -> str:
    day = header.captured_at.strftime("%Y-%m-%d")
    return f"frames/{header.camera_id}/{day}/{header.session}/{header.sequence:09d}.jpg"


class FrameStoreWorker(ConsumerWorker):
    name = "framestore"
    topics: ClassVar = (FRAMES.name,)
    group: ClassVar = "tubeline-framestore"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.stored = 0
        self.bytes_stored = 0

    def handle_message(self, message: Message) -> None:
        try:
            header = FrameHeader.from_headers(message.headers)
        except ValueError as exc:
            msg = f"invalid frame headers: {exc}"
            raise BadMessage(msg) from None
        if not message.value.startswith(JPEG_MAGIC):
            msg = f"frame value is not a JPEG (starts with {message.value[:4].hex()})"
            raise BadMessage(msg)
        key = frame_key(header)
        self.store.put(
            key,
            message.value,
            content_type="image/jpeg",
            metadata={
                "camera-id": header.camera_id,
                "captured-at": header.captured_at.isoformat(),
                "pts": repr(header.pts),
                "source-codec": header.source_codec,
            },
        )
        self.stored += 1
        self.bytes_stored += len(message.value)
