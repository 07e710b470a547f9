"""repertory: an asynchronous, actor-based runtime for stateful LLM agent sessions.

Importing it is cheap: neither Ray nor litellm is loaded until a runtime starts or a model
is called.
"""

from __future__ import annotations

from .agent import Agent
from .api import get_runtime, init, is_initialized, shutdown
from .demo_model import DEMO_MODEL
from .errors import (
    AgentError,
    ConcurrentUpdate,
    CorruptState,
    EmptyMessage,
    InvalidInput,
    InvalidSessionId,
    MessageTooLarge,
    ModelError,
    RepertoryError,
    RuntimeNotReady,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
    UnsupportedFormat,
)
from .session import Session
from .tools import Tool

__version__ = "0.1.0"

__all__ = [
    "DEMO_MODEL",
    "Agent",
    "AgentError",
    "ConcurrentUpdate",
    "CorruptState",
    "EmptyMessage",
    "InvalidInput",
    "InvalidSessionId",
    "MessageTooLarge",
    "ModelError",
    "RepertoryError",
    "RuntimeNotReady",
    "Session",
    "SessionNotFound",
    "StoreError",
    "StoreUnavailable",
    "Tool",
    "UnsupportedFormat",
    "get_runtime",
    "init",
    "is_initialized",
    "shutdown",
]
