"""Agents described in a small YAML or JSON file: name, instructions, model, tools by import path.

Either a mapping from agent name to its fields, or a list of entries with a ``name``::

    researcher:
      instructions: You find facts.
      model: openai/gpt-4o-mini          # default: $REPERTORY_MODEL or repertory/demo
      tools: [mypkg.tools:search, mypkg.tools.fetch_page]
      replicas: 2
      temperature: 0.2                   # model options go to every model call
      options: {some_provider_flag: 1}   # anything litellm takes that is not listed below

Tools are imported by path, ``"package.module:function"`` or ``"package.module.function"``.
A module that is not importable is looked for next to the agents file (and its code then
travels to Ray workers with the agent); any other tool module must be importable on every
Ray node (installed, or shipped with the job's runtime_env).
Every error names the file and the agent and says what to fix.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repertory.agents.agent import Agent
from repertory.agents.tools import Tool, is_restorable
from repertory.errors import AgentError, InvalidInput
from repertory.logs import configure_logging, get_logger

__all__ = ["AGENT_FIELDS", "LLM_OPTIONS", "agent_from_definition", "agents_from_spec", "import_tool",
           "load_agents"]

log = get_logger("repertory.agents.spec")

AGENT_FIELDS = frozenset({"name", "instructions", "model", "tools", "replicas", "max_tool_rounds",
                          "history_window", "options", "max_context_tokens", "context_policy"})
# Model options accepted inline. A closed list, so that a typo ("instruction", "tool") is an
# error instead of a keyword silently sent to the model; others go under ``options:``.
LLM_OPTIONS = frozenset({
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "n",
    "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
    "response_format", "tool_choice", "parallel_tool_calls", "user", "reasoning_effort",
    "api_base", "base_url", "api_key", "api_version", "organization", "deployment_id",
    "custom_llm_provider", "timeout", "num_retries", "extra_headers", "drop_params", "metadata",
    "mock_response",
})


def _where(source: str, name: str | None) -> str:
    return f"{source}, agent {name!r}" if name is not None else source


def _ship_by_value(module: Any) -> None:
    # Ray workers cannot import a module that sits next to the agents file on this machine:
    # pickle its functions by value, so that they travel to the AgentActors with the agent.
    try:
        from ray import cloudpickle
    except ImportError:
        return
    cloudpickle.register_pickle_by_value(module)


def _resolve(module_name: str, attr_path: list[str], base_dir: Path | None) -> Any:
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        top = module_name.split(".")[0]
        local = base_dir is not None and ((base_dir / f"{top}.py").is_file() or (base_dir / top).is_dir())
        if exc.name != top or not local:
            raise
        # A tool module next to the agents file: make that folder importable, once.
        folder = str(base_dir)
        if folder not in sys.path:
            sys.path.append(folder)
        obj = importlib.import_module(module_name)
        _ship_by_value(sys.modules[top])
    for attr in attr_path:
        obj = getattr(obj, attr)
    return obj


def import_tool(spec: str, *, base_dir: str | os.PathLike[str] | None = None,
                where: str = "tool") -> Callable[..., Any]:
    """Import the callable named by ``spec`` (``"mod.sub:func"`` or ``"mod.sub.func"``)."""
    if not isinstance(spec, str) or not spec.strip() or spec.count(":") > 1:
        raise AgentError(f"{where}: a tool is an import path like 'package.module:function', got {spec!r}")
    base = Path(base_dir) if base_dir is not None else None
    if ":" in spec:
        module_name, _, attrs = spec.partition(":")
        candidates = [(module_name, attrs.split("."))]
    else:
        parts = spec.split(".")
        if len(parts) < 2:
            raise AgentError(f"{where}: tool {spec!r} names no module; write 'module:function'")
        # Longest importable module prefix first: "a.b.c" is a.b:c, else a:b.c.
        candidates = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    last: BaseException | None = None
    for module_name, attrs in candidates:
        if not module_name or not all(attrs):
            continue
        try:
            obj = _resolve(module_name, attrs, base)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if module_name == missing or module_name.startswith(missing + "."):
                last = exc
                continue  # not this module: a shorter prefix may be it
            raise AgentError(f"{where}: tool {spec!r}: its module needs {missing!r}, which is not "
                             "installed; install it") from exc
        except AttributeError as exc:
            last = exc
            continue
        except Exception as exc:  # the module itself failed while importing
            raise AgentError(f"{where}: importing tool {spec!r} failed: {type(exc).__name__}: {exc}; "
                             "fix the module or the path") from exc
        if not callable(obj):
            raise AgentError(f"{where}: tool {spec!r} is a {type(obj).__name__}, not a function; "
                             "point it at a callable")
        return obj
    raise AgentError(f"{where}: cannot import tool {spec!r} ({last}); check the import path and that "
                     "its package is installed, on PYTHONPATH, or next to the agents file")


def _check_type(value: Any, types: type | tuple[type, ...], key: str, where: str, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, types):  # True is an int in Python, not here
        raise AgentError(f"{where}: {key!r} must be {what}, got {value!r:.60}")


def _agent(name: str, fields: Any, source: str, base_dir: Path | None, *,
           tools: list[Tool] | None = None) -> Agent:
    """An agent from its fields; ``tools`` (already resolved) replaces importing ``fields['tools']``."""
    where = _where(source, name)
    if fields is None:
        fields = {}
    if not isinstance(fields, dict):
        raise AgentError(f"{where}: an agent is a mapping of fields (instructions, model, tools, ...), "
                         f"got {type(fields).__name__}")
    unknown = sorted(set(fields) - AGENT_FIELDS - LLM_OPTIONS)
    if unknown:
        hints = [h for k in unknown for h in difflib.get_close_matches(str(k), AGENT_FIELDS | LLM_OPTIONS, 1)]
        hint = f" (did you mean {', '.join(repr(h) for h in hints)}?)" if hints else ""
        raise AgentError(f"{where}: unknown field(s) {unknown}{hint}; agent fields are {sorted(AGENT_FIELDS)}, "
                         "and other model options go under 'options:'")
    if "name" in fields and fields["name"] != name:
        raise AgentError(f"{where}: 'name' is {fields['name']!r} but the entry is {name!r}; drop one")
    for key in ("instructions", "model"):
        if fields.get(key) is not None:
            _check_type(fields[key], str, key, where, "text")
    for key in ("replicas", "max_tool_rounds", "history_window", "max_context_tokens"):
        if fields.get(key) is not None:
            _check_type(fields[key], int, key, where, "a whole number")
            least = 0 if key == "max_tool_rounds" else 1  # 0 rounds: the model may not call tools
            if fields[key] < least:
                raise AgentError(f"{where}: {key!r} must be at least {least}, got {fields[key]}")
    tools_spec = fields.get("tools") or []
    if isinstance(tools_spec, str):
        tools_spec = [tools_spec]
    _check_type(tools_spec, list, "tools", where, "a list of import paths")
    options = fields.get("options") or {}
    _check_type(options, dict, "options", where, "a mapping of model options")
    llm = {k: v for k, v in fields.items() if k in LLM_OPTIONS}
    llm.update(options)
    fns = tools if tools is not None else [import_tool(t, base_dir=base_dir, where=where) for t in tools_spec]
    kwargs = {k: fields[k] for k in ("replicas", "history_window", "max_context_tokens", "context_policy")
              if fields.get(k) is not None}
    if fields.get("max_tool_rounds") is not None:
        kwargs["max_tool_rounds"] = fields["max_tool_rounds"]
    try:
        return Agent(name, fields.get("instructions") or "", fields.get("model"), fns, **kwargs, **llm)
    except AgentError as exc:
        raise AgentError(f"{where}: {exc}") from exc
    except TypeError as exc:
        raise AgentError(f"{where}: {exc}; check the field names") from exc


def agents_from_spec(spec: Any, source: str = "agents spec", base_dir: str | os.PathLike[str] | None = None
                     ) -> dict[str, Agent]:
    """Agents (by name) from an already parsed spec: a mapping name -> fields, or a list with names."""
    base = Path(base_dir) if base_dir is not None else None
    if isinstance(spec, dict):
        entries = [(str(name) if isinstance(name, (str, int)) else name, fields) for name, fields in spec.items()]
    elif isinstance(spec, list):
        entries = []
        for i, item in enumerate(spec, 1):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"].strip():
                raise AgentError(f"{source}: entry {i} needs a 'name' (a list holds agents with names)")
            entries.append((item["name"], item))
    else:
        raise InvalidInput(f"{source}: expected a mapping of agent name -> fields, or a list of agents with "
                           f"a 'name'; got {type(spec).__name__}")
    if not entries:
        raise InvalidInput(f"{source}: defines no agents; add at least one")
    agents: dict[str, Agent] = {}
    for name, fields in entries:
        if not isinstance(name, str) or not name.strip():
            raise AgentError(f"{source}: agent names must be non-empty text, got {name!r}")
        if name in agents:
            raise AgentError(f"{source}: agent {name!r} is defined twice; rename one")
        agents[name] = _agent(name, fields, source, base)
    return agents


def _restore_tool(entry: dict[str, Any], where: str) -> Tool:
    name, path = entry["name"], entry["path"]
    if path is None:
        raise AgentError(f"{where}: tool {name!r} was stored without an import path (a lambda, a closure or "
                         "a method), so it cannot be restored; pass agent= to continue this session")
    fn = import_tool(path, where=f"{where}, tool {name!r}")  # no base_dir: sys.path stays as it is
    if not is_restorable(fn):
        raise AgentError(f"{where}: tool {name!r} ({path}) is not marked as restorable; decorate the function "
                         "with @repertory.tool, or pass agent= to continue this session")
    return Tool(fn, name=name, description=entry["description"])


def agent_from_definition(definition: dict[str, Any], where: str = "stored agent") -> Agent:
    """The agent a stored definition (:meth:`Agent.to_dict`, checked by the state schema)
    describes. Tools are imported by path, and only functions marked with
    :func:`repertory.tool`; a tool without a path raises :class:`AgentError`."""
    d = definition
    at = _where(where, d["name"])
    fields: dict[str, Any] = {k: d[k] for k in ("instructions", "model", "max_tool_rounds", "history_window")
                              if d.get(k) is not None}
    fields["options"] = dict(d.get("options") or {})
    context = d.get("context") or {}
    fields.update({k: v for k, v in (("max_context_tokens", context.get("tokens")),
                                     ("context_policy", context.get("policy"))) if v is not None})
    tools = [_restore_tool(t, at) for t in d.get("tools") or []]
    agent = _agent(d["name"], fields, where, None, tools=tools)
    if d.get("withheld"):
        log.warning("agent_options_withheld", agent=d["name"], options=d["withheld"],
                    hint="secrets are never stored: the model takes them from the environment, "
                         "or pass agent=")
    return agent


def _parse(path: Path, text: str) -> Any:
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except ValueError as exc:
            raise InvalidInput(f"agents file {path} is not valid JSON: {exc}") from exc
    try:
        import yaml
    except ImportError as exc:  # pyyaml comes with litellm and ray; say so if it went missing
        raise InvalidInput(f"reading {path} needs PyYAML (pip install pyyaml), or write it as .json") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"agents file {path} is not valid YAML: {' '.join(str(exc).split())}") from exc


def load_agents(path: str | os.PathLike[str]) -> dict[str, Agent]:
    """Read agents from a ``.yaml``/``.yml``/``.json`` file; see the module docstring."""
    configure_logging()  # may run before repertory.init(): keep structlog's defaults quiet
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"agents file {p} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read agents file {p}: {exc}") from exc
    agents = agents_from_spec(_parse(p, text), f"agents file {p}", p.resolve().parent)
    log.info("agents_loaded", path=str(p), agents=sorted(agents))
    return agents


# -- batch jobs -------------------------------------------------------------------------
