"""The rows both LangGraph backends store and return (bytes in, bytes out).

A checkpoint row is ``(thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
checkpoint, metadata_type, metadata)``: the checkpoint and its metadata as LangGraph's serializer
typed them. A write row is ``(task_id, channel, type, value, task_path, idx)``.
"""

from __future__ import annotations

__all__ = ["CheckpointRow", "WriteRow"]

CheckpointRow = tuple[str, str, str, "str | None", str, bytes, str, bytes]
WriteRow = tuple[str, str, str, bytes, str, int]
