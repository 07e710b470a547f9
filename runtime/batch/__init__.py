"""Batch jobs: many agent conversations or workflows from a JSONL file, resumable."""

from __future__ import annotations

from repertory.batch.runner import BatchReport, abatch, batch

__all__ = ["BatchReport", "abatch", "batch"]
