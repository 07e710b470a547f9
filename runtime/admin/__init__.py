"""Administration of stored sessions: listing and cleanup, export and import."""

from __future__ import annotations

from repertory.admin.sessions import (
    ImportResult,
    SessionSummary,
    acleanup,
    aexport_sessions,
    aimport_sessions,
    alist_sessions,
    cleanup,
    export_sessions,
    import_sessions,
    list_sessions,
    parse_duration,
)

__all__ = ["ImportResult", "SessionSummary", "acleanup", "aexport_sessions", "aimport_sessions",
           "alist_sessions", "cleanup", "export_sessions", "import_sessions", "list_sessions", "parse_duration"]
