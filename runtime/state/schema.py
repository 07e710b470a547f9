"""The one declared schema of a session's stored state (pure checks, no I/O).

Every write, every load from the store, every file load and every import checks with these
functions. Each takes ``error``: :class:`InvalidInput` for what a caller gives (the message
says how to fix it), :class:`CorruptState` for what was read (the message says to restore).
Plain values follow :mod:`repertory.stores.values` (NaN, tuples, non-str keys, depth: see
there). Times and durations must be finite numbers. Meta fields are declared: an unknown
field is refused, so a new one is added here (and the schema version bumped if old
releases could misread it).
"""

from __future__ import annotations

import math
from typing import Any

from repertory.agents.definition import DEFINITION_FIELDS, OPTIONAL_FIELDS, TOOL_FIELDS, stored_options
from repertory.errors import CorruptState, InvalidInput, UnsupportedFormat
from repertory.ids import storage_key, validate_session_id, validate_user_id

from repertory.stores.values import MAX_DEPTH, RECORD_MAX_DEPTH, Error, Violation, check_plain, check_value, raise_as

__all__ = ["AGENT_CHANGES_KEPT", "CHANGE_FIELDS", "CONTEXT_FIELDS", "CONTEXT_POLICIES", "RATINGS_KEPT",
           "WINDOW_FIELDS", "check_context_settings", "MAX_DEPTH", "RECORD_MAX_DEPTH", "ROLES", "SCHEMA_VERSION",
           "check_agent_definitions", "check_checkpoint_info", "check_export_doc", "check_message", "check_meta",
           "check_ttl", "check_value"]

SCHEMA_VERSION = 1  # of the meta dict; equals session_state.SCHEMA_VERSION (a test checks)
ROLES = frozenset({"system", "user", "assistant", "tool"})
_IMPORT = "nothing was imported. Re-export it, or remove it and import the rest"
_META_REQUIRED = ("schema", "session_id", "user_id", "created_at", "updated_at", "turns", "user_data",
                  "user_profile", "metadata", "recent_turns", "ttl")
# Sessions stored before agent definitions were kept lack the last three; all are optional.
_META_OPTIONAL = ("last_turn_id", "metrics", "agent", "agents", "agent_changes", "recent_ops",
                  "ratings", "context", "window", "cancelled_turns", "shared_state_id")
# What a session's turns cost beyond one model call each (SessionState.append_write), and
# the turns that failed (the model or a tool raised; nothing else was written).
METRICS = ("repeated_model_calls", "cas_retries", "lease_waits", "errors")
RATINGS_KEPT = 100  # the newest explicit ratings a session keeps (Session.rate)
CONTEXT_POLICIES = ("drop", "summarize")
CONTEXT_FIELDS = ("messages", "tokens", "policy")  # a session's window settings (meta["context"])
WINDOW_FIELDS = ("start", "summary", "usage", "summaries")  # its window's state (meta["window"])
AGENT_CHANGES_KEPT = 32  # the newest replacements of a session's agents that it remembers
CHANGE_FIELDS = ("at", "field", "name", "old", "new")
_INFO_FIELDS = ("id", "cp_id", "kind", "turn", "timestamp", "label")


# -- fields ---------------------------------------------------------------------------------
def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_time(x: Any) -> bool:
    """A finite number that converts to a float (time.time() + ttl must not overflow)."""
    if _is_int(x):
        return -(2**63) <= x < 2**64
    return isinstance(x, float) and math.isfinite(x)


def _need(ok: bool, where: str, what: str, fix: str) -> None:
    if not ok:
        raise Violation(what, fix, where)


def check_ttl(ttl: Any) -> float | None:
    """``ttl`` if it is None or a finite positive number of seconds, else :class:`InvalidInput`."""
    try:
        return _ttl(ttl, "ttl")
    except Violation as bad:
        raise_as(bad, InvalidInput)


def _ttl(ttl: Any, where: str) -> float | None:
    _need(ttl is None or (_is_time(ttl) and ttl > 0), where, f"must be a positive number of seconds, got {ttl!r:.40}",
          "use None to keep the session forever")
    return ttl


def _message(msg: Any, where: str) -> dict[str, Any]:
    _need(isinstance(msg, dict), where, f"must be a dict, got {type(msg).__name__}",
          'pass {"role": ..., "content": ...}')
    check_plain(msg, where)
    role = msg.get("role")
    _need(isinstance(role, str) and role in ROLES, where, f"has role {role!r:.40}", f"use one of {sorted(ROLES)}")
    content = msg.get("content")
    # OpenAI's tool-call messages carry no text: None (or no content) only there.
    tool_call = role == "assistant" and bool(msg.get("tool_calls"))
    _need(isinstance(content, str) or (content is None and tool_call), where + "['content']",
          f"must be a str, got {type(content).__name__}", "put the text in content (None only on an "
          "assistant message with tool_calls)")
    for f in ("timestamp", "edited_at"):
        _need(f not in msg or _is_time(msg[f]), f"{where}[{f!r}]", f"must be a finite number, got {msg.get(f)!r:.40}",
              "use time.time()")
    # name and tool_call_id may be None: agent.py copies them from the model's call as given.
    for f, nullable in (("name", True), ("tool_call_id", True), ("agent", False)):
        v = msg.get(f)
        _need(f not in msg or isinstance(v, str) or (nullable and v is None), f"{where}[{f!r}]",
              f"must be a str, got {type(v).__name__}", "pass text")
    _need("model" not in msg or isinstance(msg["model"], str), f"{where}['model']",
          f"must be a str, got {type(msg.get('model')).__name__}", "pass the model's name")
    for f in ("latency", "cost"):
        _need(f not in msg or (_is_time(msg[f]) and msg[f] >= 0), f"{where}[{f!r}]",
              f"must be a finite number >= 0, got {msg.get(f)!r:.40}", "leave it to repertory")
    usage = msg.get("usage", {})
    _need(isinstance(usage, dict) and all(_is_int(n) for n in usage.values()), f"{where}['usage']",
          "must map token-count names to ints", 'e.g. {"prompt_tokens": 12}')
    calls = msg.get("tool_calls", [])
    _need(isinstance(calls, list) and all(isinstance(c, dict) for c in calls), f"{where}['tool_calls']",
          "must be a list of dicts", "use the OpenAI tool_calls format")
    return dict(msg)


def check_message(msg: Any, index: int, *, where: str = "history", error: Error = InvalidInput) -> dict[str, Any]:
    """One stored message (role, content, typed optional fields); returns a shallow copy."""
    try:
        return _message(msg, f"{where} message {index}")
    except Violation as bad:
        raise_as(bad, error)


def _recent_op(entry: Any, where: str) -> None:
    """``[op_id, result]``: result is None (answered from the state), the id of the checkpoint
    create_checkpoint made, or ``[checkpoint id, start, stop]`` (the messages an edit removed,
    kept in the checkpoint it took before the edit)."""
    _need(isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str) and 0 < len(entry[0]) <= 128,
          where, "must be an [operation id, result] pair", "leave it to repertory")
    result = entry[1]
    edit = (isinstance(result, list) and len(result) == 3 and isinstance(result[0], str)
            and all(_is_int(n) and n >= 0 for n in result[1:]) and result[1] <= result[2])
    _need(result is None or isinstance(result, str) or edit, where, f"has result {result!r:.60}",
          "leave it to repertory")


def _text(x: Any) -> bool:
    return isinstance(x, str) and bool(x.strip())


def _tool_path(x: Any) -> bool:
    if not isinstance(x, str) or x.count(":") != 1:
        return False
    module, _, qualname = x.partition(":")
    return all(p.isidentifier() for p in module.split(".")) and all(p.isidentifier() for p in qualname.split("."))


def _agent_def(d: Any, where: str) -> None:
    """An agent definition (``Agent.to_dict()``): its fields, their types, and no secrets."""
    _need(isinstance(d, dict), where, f"must be an agent definition (a dict), got {type(d).__name__}",
          "Agent.to_dict() gives one")
    _need(set(DEFINITION_FIELDS) <= set(d) <= set(DEFINITION_FIELDS + OPTIONAL_FIELDS), where,
          f"has fields {sorted(map(str, d))}",
          f"an agent definition has exactly {list(DEFINITION_FIELDS)}, and optionally {list(OPTIONAL_FIELDS)}")
    if "context" in d:
        c = d["context"]
        _need(isinstance(c, dict) and set(c) == {"tokens", "policy"}
              and (c["tokens"] is None or (_is_int(c["tokens"]) and c["tokens"] >= 1))
              and c["policy"] in (None, *CONTEXT_POLICIES), f"{where}['context']",
              f"must be {{'tokens': int >= 1 | None, 'policy': one of {list(CONTEXT_POLICIES)} | None}}",
              "Agent.to_dict() gives it")
    for f in ("name", "model"):
        _need(_text(d[f]), f"{where}[{f!r}]", f"must be non-empty text, got {d[f]!r:.40}", "pass text")
    _need(isinstance(d["instructions"], str), f"{where}['instructions']",
          f"must be text, got {type(d['instructions']).__name__}", "pass text")
    _need(_is_int(d["max_tool_rounds"]) and d["max_tool_rounds"] >= 0, f"{where}['max_tool_rounds']",
          f"must be an int >= 0, got {d['max_tool_rounds']!r:.40}", "use a whole number")
    hw = d["history_window"]
    _need(hw is None or (_is_int(hw) and hw >= 1), f"{where}['history_window']",
          f"must be None or an int >= 1, got {hw!r:.40}", "use None for the whole history")
    options = d["options"]
    _need(isinstance(options, dict), f"{where}['options']", f"must be a dict, got {type(options).__name__}",
          "pass model options as a dict")
    check_plain(options, f"{where}['options']")
    _, secret = stored_options(options)
    _need(not secret, f"{where}['options']", f"holds {secret}, which a session never stores (secrets)",
          "drop them; the model takes keys from the environment")
    withheld = d["withheld"]
    _need(isinstance(withheld, list) and all(isinstance(w, str) for w in withheld), f"{where}['withheld']",
          "must be a list of option names", "leave it to repertory")
    tools = d["tools"]
    _need(isinstance(tools, list), f"{where}['tools']", f"must be a list, got {type(tools).__name__}",
          "list the tools")
    names = set()
    for i, t in enumerate(tools):
        at = f"{where}['tools'][{i}]"
        _need(isinstance(t, dict) and set(t) == set(TOOL_FIELDS), at, f"must be a dict with exactly "
              f"{list(TOOL_FIELDS)}", "Agent.to_dict() gives them")
        _need(_text(t["name"]) and t["name"] not in names, at + "['name']",
              f"must be non-empty text naming one tool, got {t['name']!r:.40}", "name each tool once")
        names.add(t["name"])
        _need(t["path"] is None or _tool_path(t["path"]), at + "['path']",
              f"must be None or an import path 'module:qualname', got {t['path']!r:.80}", "fix the path")
        _need(isinstance(t["description"], str), at + "['description']", "must be text", "pass text")


def check_context_settings(settings: Any, where: str, *, error: Error = InvalidInput) -> dict[str, Any]:
    """A session's window settings: ``{"messages": int >= 1 | None, "tokens": int >= 1 | None,
    "policy": "drop" | "summarize"}``; returns them."""
    try:
        _context(settings, where)
    except Violation as bad:
        raise_as(bad, error)
    return settings


def _context(c: Any, where: str) -> None:
    _need(isinstance(c, dict) and set(c) == set(CONTEXT_FIELDS), where,
          f"must be a dict with exactly {list(CONTEXT_FIELDS)}", "leave it to repertory")
    for f, name in (("messages", "context_window"), ("tokens", "max_context_tokens")):
        v = c[f]
        _need(v is None or (_is_int(v) and v >= 1), f"{where}[{f!r}]", f"must be None or an int >= 1, got {v!r:.40}",
              f"pass {name}=None or a positive number")
    _need(c["policy"] in CONTEXT_POLICIES, f"{where}['policy']", f"is {c['policy']!r:.40}",
          f"use one of {list(CONTEXT_POLICIES)}")


def _window(w: Any, where: str) -> None:
    _need(isinstance(w, dict) and set(w) == set(WINDOW_FIELDS), where,
          f"must be a dict with exactly {list(WINDOW_FIELDS)}", "leave it to repertory")
    _need(_is_int(w["start"]) and w["start"] >= 0, where + "['start']", "must be an int >= 0", "leave it to repertory")
    _need(w["summary"] is None or isinstance(w["summary"], str), where + "['summary']", "must be a str or None",
          "leave it to repertory")
    _need(_is_int(w["summaries"]) and w["summaries"] >= 0, where + "['summaries']", "must be an int >= 0",
          "leave it to repertory")
    u = w["usage"]
    _need(isinstance(u, dict) and all(_is_int(n) for n in u.values()), where + "['usage']",
          "must map token-count names to ints", "leave it to repertory")


def _ratings(ratings: Any, where: str) -> None:
    _need(isinstance(ratings, list) and len(ratings) <= RATINGS_KEPT, where,
          f"must be a list of at most {RATINGS_KEPT} ratings", "leave it to repertory")
    for i, r in enumerate(ratings):
        at = f"{where}[{i}]"
        _need(isinstance(r, list) and len(r) == 3, at, "must be a [score, time, comment] triple", "use Session.rate")
        score, when, comment = r
        _need((_is_int(score) or isinstance(score, float)) and _is_time(score) and 0 <= score <= 1, at,
              f"score must be a number from 0 to 1, got {score!r:.40}", "use Session.rate")
        _need(_is_time(when), at, f"time must be a finite number, got {when!r:.40}", "use time.time()")
        _need(comment is None or isinstance(comment, str), at, "comment must be a str or None", "pass text")


def _agents(meta: dict[str, Any], m: str) -> None:
    if meta.get("agent") is not None:
        _agent_def(meta["agent"], m + "['agent']")
    agents = meta.get("agents", {})
    _need(isinstance(agents, dict), m + "['agents']", f"must be a dict of name -> agent definition, got "
          f"{type(agents).__name__}", "pass a dict")
    for name, d in agents.items():
        _need(_text(name), m + "['agents']", f"has the agent name {name!r:.40}", "use non-empty text")
        _agent_def(d, f"{m}['agents'][{name!r}]")
    changes = meta.get("agent_changes", [])
    _need(isinstance(changes, list) and len(changes) <= AGENT_CHANGES_KEPT, m + "['agent_changes']",
          f"must be a list of at most {AGENT_CHANGES_KEPT} change records", "leave it to repertory")
    for i, c in enumerate(changes):
        at = f"{m}['agent_changes'][{i}]"
        _need(isinstance(c, dict) and set(c) == set(CHANGE_FIELDS), at,
              f"must be a dict with exactly {list(CHANGE_FIELDS)}", "leave it to repertory")
        _need(_is_time(c["at"]), at + "['at']", f"must be a finite number, got {c['at']!r:.40}", "use time.time()")
        _need(c["field"] in ("agent", "agents"), at + "['field']", f"is {c['field']!r:.40}",
              "use 'agent' or 'agents'")
        _need(_text(c["name"]), at + "['name']", f"must be non-empty text, got {c['name']!r:.40}", "pass text")
        for f in ("old", "new"):
            _need(c[f] is None or _text(c[f]), f"{at}[{f!r}]", f"must be a definition key or None, got "
                  f"{c[f]!r:.40}", "leave it to repertory")


def check_agent_definitions(defs: Any, where: str, *, error: Error = InvalidInput) -> dict[str, Any]:
    """A handle's agent definitions as a turn carries them: ``{"agent": definition,
    "agents": {name: definition}}``; returns them."""
    try:
        _need(isinstance(defs, dict) and set(defs) == {"agent", "agents"}, where,
              "must be a dict with 'agent' and 'agents'", "leave it to repertory")
        _need(defs["agent"] is not None, where + "['agent']", "is missing", "pass the agent that chats")
        _agents(defs, where)
    except Violation as bad:
        raise_as(bad, error)
    return defs


def _meta(meta: Any, where: str, error: Error) -> dict[str, Any]:
    m = f"{where} meta"
    _need(isinstance(meta, dict), m, f"must be a dict, got {type(meta).__name__}", "pass the meta of a session")
    schema = meta.get("schema")
    if _is_int(schema) and schema != SCHEMA_VERSION and not issubclass(error, InvalidInput):
        raise UnsupportedFormat(f"{where} has state schema {schema}; this release reads schema "
                                f"{SCHEMA_VERSION}. Upgrade repertory to read it")
    _need(schema == SCHEMA_VERSION and _is_int(schema), m + "['schema']", f"is {schema!r:.40}",
          f"it must be {SCHEMA_VERSION}")
    missing = [f for f in _META_REQUIRED if f not in meta]
    _need(not missing, m, f"lacks {missing}", "start from the meta of a session")
    unknown = sorted(str(f) for f in meta if f not in _META_REQUIRED and f not in _META_OPTIONAL)
    _need(not unknown, m, f"has unknown fields {unknown}", f"the fields are {sorted(_META_REQUIRED + _META_OPTIONAL)}")
    try:
        validate_session_id(meta["session_id"])
        validate_user_id(meta["user_id"])
    except InvalidInput as exc:
        raise Violation(str(exc), "use a valid id", m) from None
    for f in ("created_at", "updated_at"):
        _need(_is_time(meta[f]), f"{m}['{f}']", f"must be a finite number, got {meta[f]!r:.40}", "use time.time()")
    _need(_is_int(meta["turns"]) and meta["turns"] >= 0, m + "['turns']",
          f"must be an int >= 0, got {meta['turns']!r:.40}", "count the turns")
    for f in ("user_data", "user_profile", "metadata"):
        _need(isinstance(meta[f], dict), f"{m}['{f}']", f"must be a dict, got {type(meta[f]).__name__}", "pass a dict")
        check_plain(meta[f], f"{m}['{f}']")
    recent = meta["recent_turns"]
    _need(isinstance(recent, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and _is_int(p[1]) for p in recent),
        m + "['recent_turns']", "must be a list of [turn id, message index] pairs", "leave it to repertory")
    _ttl(meta["ttl"], m + "['ttl']")
    ops = meta.get("recent_ops", [])
    _need(isinstance(ops, list), m + "['recent_ops']", "must be a list of [operation id, result] pairs",
          "leave it to repertory")
    for j, entry in enumerate(ops):
        _recent_op(entry, f"{m}['recent_ops'][{j}]")
    cancelled = meta.get("cancelled_turns", [])
    _need(isinstance(cancelled, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) and p[1] in ("interrupt", "rollback")
        for p in cancelled), m + "['cancelled_turns']",
        "must be a list of [turn id, 'interrupt' or 'rollback'] pairs", "leave it to repertory")
    metrics = meta.get("metrics", {})
    _need(isinstance(metrics, dict) and set(metrics) <= set(METRICS) and all(
        _is_int(n) and n >= 0 for n in metrics.values()), m + "['metrics']",
        f"must map some of {list(METRICS)} to ints >= 0", "leave it to repertory")
    _agents(meta, m)
    if meta.get("context") is not None:
        _context(meta["context"], m + "['context']")
    if "window" in meta:
        _window(meta["window"], m + "['window']")
    _ratings(meta.get("ratings", []), m + "['ratings']")
    last = meta.get("last_turn_id")
    _need(last is None or isinstance(last, str), m + "['last_turn_id']", "must be a str or None", "pass text")
    shared = meta.get("shared_state_id")
    _need(shared is None or (isinstance(shared, str) and 0 < len(shared) <= 128), m + "['shared_state_id']",
          "must be a shared state id (1 to 128 characters) or None", "leave it to repertory")
    # The rest (surrogates in ids, huge ints) in one walk; the three dicts were walked above.
    check_plain({k: v for k, v in meta.items() if k not in ("user_data", "user_profile", "metadata")}, m)
    return dict(meta)


def check_meta(meta: Any, where: str, *, error: Error = CorruptState) -> dict[str, Any]:
    """A session's meta as stored; returns a shallow copy.

    ``error``: CorruptState (default) for meta loaded from a store or file, where an unknown
    schema version raises UnsupportedFormat; InvalidInput for a caller's write.
    """
    try:
        return _meta(meta, where, error)
    except Violation as bad:
        raise_as(bad, error)


def _info(info: Any, where: str) -> dict[str, Any]:
    _need(isinstance(info, dict) and set(info) == set(_INFO_FIELDS), where,
          f"checkpoint info must be a dict with exactly {list(_INFO_FIELDS)}", "list_checkpoints() gives them")
    kind, n = info["kind"], info["id"]
    _need(kind in ("checkpoint", "version"), where, f"kind is {kind!r:.40}", "use 'checkpoint' or 'version'")
    first = 1 if kind == "checkpoint" else 0  # versions start at 0, checkpoints at 1
    _need(_is_int(n) and n >= first, where, f"{kind} id must be an int >= {first}, got {n!r:.40}", "use its number")
    _need(info["cp_id"] == f"{kind[0]}{n}", where, f"cp_id {info['cp_id']!r:.40} does not match {kind} {n}",
          f"use {kind[0]}{n!r}")
    _need(_is_int(info["turn"]) and info["turn"] >= 0, where, f"turn must be an int >= 0, got {info['turn']!r:.40}",
          "use the session's turn count")
    _need(_is_time(info["timestamp"]), where, f"timestamp must be a finite number, got {info['timestamp']!r:.40}",
          "use time.time()")
    _need(isinstance(info["label"], str), where, f"label must be a str, got {type(info['label']).__name__}",
          "pass text")
    check_plain(info, where)
    return dict(info)


def check_checkpoint_info(info: Any, where: str, *, error: Error = CorruptState) -> dict[str, Any]:
    """A checkpoint's or version's info dict (id, cp_id, kind, turn, timestamp, label); a copy."""
    try:
        return _info(info, where)
    except Violation as bad:
        raise_as(bad, error)


# -- exported sessions ----------------------------------------------------------------------
def _decoded(data: Any, where: str) -> Any:
    from repertory.stores.codec import MsgpackCodec  # lazy: the codec imports this module

    _need(isinstance(data, bytes), where, f"must be an encoded record (bytes), got {type(data).__name__}",
          "re-export it")
    try:
        return MsgpackCodec().decode(data, source=where)
    except UnsupportedFormat:
        raise
    except CorruptState as exc:
        raise CorruptState(f"{exc} ({_IMPORT})") from None


def _messages(raw: Any, where: str) -> list[bytes]:
    _need(isinstance(raw, list), where, "messages must be a list of encoded messages", "re-export it")
    for i, m in enumerate(raw):
        _message(_decoded(m, f"{where} message {i}"), f"{where} message {i}")
    return list(raw)


def _export_doc(doc: Any, where: str) -> dict[str, Any]:
    _need(isinstance(doc, dict) and doc.get("kind", "repertory.session") == "repertory.session", where,
          "is not an exported session", "re-export it")
    meta = _meta(doc.get("meta"), where, CorruptState)

    key = storage_key(meta["session_id"], meta["user_id"])
    _need(doc.get("key", key) == key, where, f"key {doc.get('key')!r:.80} does not match the session it holds "
          f"({key!r})", "re-export it")
    version = doc.get("version", 0)
    _need(_is_int(version) and version >= 0, where, f"version must be an int >= 0, got {version!r:.40}", "re-export it")
    messages = _messages(doc.get("messages"), where)
    checkpoints = doc.get("checkpoints") or []
    _need(isinstance(checkpoints, list), where, "checkpoints must be a list", "re-export it")
    clean_cps, seen = [], set()
    for j, cp in enumerate(checkpoints):
        at = f"{where} checkpoint {j}"
        _need(isinstance(cp, dict), at, "must be a dict with info and data", "re-export it")
        info = _info(cp.get("info"), at)
        _need(info["cp_id"] not in seen, at, f"{info['cp_id']!r} appears twice", "re-export it")
        seen.add(info["cp_id"])
        snap = _decoded(cp.get("data"), at)
        _need(isinstance(snap, dict) and "meta" in snap and "messages" in snap, at, "is not a session snapshot",
              "re-export it")
        _meta(snap["meta"], at, CorruptState)
        rev = snap.get("revision", snap.get("version", 0))  # "version" in snapshots of older releases
        _need(_is_int(rev) and rev >= 0, at, f"revision must be an int >= 0, got {rev!r:.40}", "re-export it")
        _messages(snap["messages"], at)
        clean_cps.append({"info": info, "data": cp["data"]})
    return {"kind": "repertory.session", "key": key, "meta": meta, "messages": messages,
            "version": version, "checkpoints": clean_cps}


def check_export_doc(doc: Any, where: str) -> dict[str, Any]:
    """An exported session (``state_ops.export``'s dict), every record decoded and checked.

    Returns the clean doc; raises CorruptState (UnsupportedFormat for a newer schema) before
    anything is written, naming ``where`` (a file, or a line of one).
    """
    try:
        return _export_doc(doc, where)
    except Violation as bad:
        raise_as(bad, CorruptState, _IMPORT)
