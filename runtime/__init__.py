"""repertory: an asynchronous, actor-based runtime for stateful LLM agent sessions.

Importing it is cheap: neither Ray nor litellm is loaded until a runtime starts or a model
is called.
"""

from __future__ import annotations

from repertory.admin import (
    acleanup,
    aexport_sessions,
    aimport_sessions,
    alist_sessions,
    arekey_sessions,
    cleanup,
    export_sessions,
    import_sessions,
    list_sessions,
    rekey_sessions,
)
from repertory.agents.agent import Agent
from repertory.runtimes.current import get_runtime, init, is_initialized, shutdown
from repertory.batch.runner import BatchReport, abatch, batch
from repertory.agents.demo_model import DEMO_MODEL
from repertory import tokens
from repertory.errors import (
    AccessDenied,
    AgentError,
    ConcurrentUpdate,
    CorruptState,
    DecryptionFailed,
    EmptyMessage,
    EncryptionError,
    EncryptionKeyMissing,
    InvalidInput,
    InvalidSessionId,
    InvalidToken,
    MemoryConfigError,
    MessageTooLarge,
    ModelError,
    RateLimited,
    RepertoryError,
    RuntimeNotReady,
    ServerError,
    ServerUnavailable,
    SessionBusy,
    SessionFileNotFound,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
    StreamNotResumable,
    TurnInterrupted,
    UnsupportedFormat,
    WorkflowError,
    WriteNotReplicated,
)
from repertory.memory.memory import Memory
from repertory.memory.quality import QualityFilter
from repertory.session.handle import Session
from repertory.shared.handle import SharedState
from repertory.agents.tools import Tool, tool
from repertory.workflow import Task, Workflow, WorkflowResults
from repertory.stores.crypto import generate_encryption_key

__version__ = "0.1.0"

__all__ = [
    "DEMO_MODEL",
    "AccessDenied",
    "Agent",
    "AgentError",
    "BatchReport",
    "ConcurrentUpdate",
    "CorruptState",
    "DecryptionFailed",
    "EmptyMessage",
    "EncryptionError",
    "EncryptionKeyMissing",
    "InvalidInput",
    "InvalidSessionId",
    "InvalidToken",
    "Memory",
    "MemoryConfigError",
    "MessageTooLarge",
    "ModelError",
    "QualityFilter",
    "RateLimited",
    "RepertoryError",
    "RuntimeNotReady",
    "ServerError",
    "ServerUnavailable",
    "Session",
    "SessionBusy",
    "SessionFileNotFound",
    "SessionNotFound",
    "SharedState",
    "StoreError",
    "StoreUnavailable",
    "StreamNotResumable",
    "Task",
    "Tool",
    "TurnInterrupted",
    "UnsupportedFormat",
    "Workflow",
    "WorkflowError",
    "WorkflowResults",
    "WriteNotReplicated",
    "abatch",
    "acleanup",
    "aexport_sessions",
    "aimport_sessions",
    "alist_sessions",
    "arekey_sessions",
    "batch",
    "cleanup",
    "export_sessions",
    "generate_encryption_key",
    "get_runtime",
    "import_sessions",
    "init",
    "is_initialized",
    "list_sessions",
    "rekey_sessions",
    "shutdown",
    "tool",
]
