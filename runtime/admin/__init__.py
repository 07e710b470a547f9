"""Administration of stored sessions: listing and cleanup (``listing``), export and import (``transfer``),
re-encryption (``rekey``), bytes stored per session (``usage``)."""

from __future__ import annotations

from repertory.admin.listing import (
    SessionSummary,
    acleanup,
    alist_sessions,
    cleanup,
    list_sessions,
    parse_duration,
)
from repertory.admin.rekey import arekey_sessions, rekey_sessions
from repertory.admin.transfer import ImportResult, aexport_sessions, aimport_sessions, export_sessions, import_sessions
from repertory.admin.usage import SessionUsage, astorage_usage, storage_usage

__all__ = ["ImportResult", "SessionSummary", "SessionUsage", "acleanup", "aexport_sessions", "aimport_sessions",
           "alist_sessions", "arekey_sessions", "astorage_usage", "cleanup", "export_sessions", "import_sessions",
           "list_sessions", "parse_duration", "rekey_sessions", "storage_usage"]
