"""Batch jobs: many conversations or workflows from a JSONL file, run concurrently, resumable.

Input, one job per line (a JSON object; blank lines are ignored)::

    {"id": "q1", "agent": "researcher", "messages": ["Hello", "What did I say?"]}
    {"id": "q2", "session_id": "s-42", "user_id": "alice", "messages": ["Hi again"]}
    {"id": "r1", "input": "text to work on", "workflow": {"name": "review", "tasks": [
        {"name": "draft", "description": "Draft it", "agent": "writer"},
        {"name": "check", "description": "Check the draft", "agent": "critic", "depends_on": ["draft"]}]}}

``id`` is required and unique. An agent job sends its messages in order to a session
(``session_id``, default ``batch-<id>``); a workflow job runs its tasks as a
:class:`~repertory.Workflow` recorded in session ``batch-<id>``, ``input`` given to each task.
A job without ``agent`` uses ``default_agent``, else the only agent given, else (no agents) a
plain assistant on the default model.

Output, one JSON line per job, appended as each job finishes (flushed with it, or with the
other jobs of its slice: ``repertory.batch.slices``)::

    {"id": "q1", "line": 1, "status": "ok", "session_id": "batch-q1", "replies": ["...", "..."],
     "error": null, "error_type": null, "attempts": 1, "seconds": 0.02, "turns": 2}

(``results``: task name -> output, instead of ``replies`` for workflows.) A bad line (not
JSON, a missing field, an unknown agent) gets an ``"error"`` line with its line number;
failed jobs get one after their retries, with the partial replies or results. Nothing is
dropped and nothing aborts the batch, except duplicate ids (checked before anything runs).

Re-running a batch with the same output file skips the ids whose last line says ``"ok"`` and
runs the others again; **the last line for an id wins**. Each message has a deterministic
turn id, so a message answered before an interruption is answered from the store, not sent to
the model again, and a workflow resumes from its recorded tasks.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from repertory._sync import run_sync
from repertory.agents.agent import Agent
from repertory.runtimes.current import get_runtime
from repertory.batch.jobs import Job, job_id, parse_job, pick_default, resolve_agents
from repertory.batch.slices import Slicer
from repertory.errors import InvalidInput, RepertoryError, WorkflowError
from repertory.host.api import TurnReply, TurnRequest
from repertory.host.chains import ChainResult
from repertory.jsonl import read_jsonl
from repertory.logs import get_logger
from repertory.agents.model_client import NULL_MODEL, load_litellm
from repertory.runtimes.base import Runtime
from repertory.session.handle import Session
from repertory.state.session_state import RECENT_TURNS
from repertory.workflow import Workflow

__all__ = ["BatchReport", "abatch", "batch"]

log = get_logger("repertory.batch")
_FSYNC_EVERY = 100  # output lines between fsyncs: flushed lines survive a crash of this process anyway
_BACKOFF, _MAX_BACKOFF = 0.25, 10.0  # seconds before the 2nd attempt, doubling, capped
_MAX_ERRORS = 100  # errors kept in the report (all of them are in the output file)
Source = str | os.PathLike[str] | Iterable[dict[str, Any]]


@dataclass
class BatchReport:
    """What a batch did: counts, speed, and the first errors by job id (all are in the output)."""

    total: int = 0  # jobs in the input (bad lines included)
    ok: int = 0
    failed: int = 0
    skipped: int = 0  # finished in an earlier run (their output line says "ok")
    seconds: float = 0.0
    turns: int = 0  # model turns answered in this run (replayed ones not counted)
    errors: dict[str, str] = field(default_factory=dict)  # id (or "line N") -> "Type: message", first 100
    output: str = ""
    # Calls that carried many jobs' turns to their host at once (batch.slices), and the jobs
    # sent in them; the other jobs (workflows, long jobs, retries) went a turn per call.
    slices: int = 0
    sliced_jobs: int = 0

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.skipped

    @property
    def jobs_per_s(self) -> float:
        return (self.ok + self.failed) / self.seconds if self.seconds > 0 else 0.0

    @property
    def turns_per_s(self) -> float:
        return self.turns / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "jobs_per_s": self.jobs_per_s, "turns_per_s": self.turns_per_s}


@dataclass(slots=True)
class _Done:
    """What an attempt got done; kept across attempts for the output line."""

    replies: list[str] = field(default_factory=list)
    results: dict[str, str] = field(default_factory=dict)
    turns: int = 0

    def add(self, reply: TurnReply) -> None:
        self.replies.append(reply.content)
        self.turns += not reply.replayed


# -- input ------------------------------------------------------------------------------
def _reader(source: Source) -> tuple[Callable[[], Iterator[tuple[int, Any]]], str]:
    """A function that iterates the jobs (it is called twice: scan, then run) and a label."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise InvalidInput(f"batch input {path} does not exist or is not a file")
        return (lambda: read_jsonl(path)), str(path)
    items = source if isinstance(source, (list, tuple)) else list(source)  # a generator: read once
    return (lambda: ((n, obj) for n, obj in enumerate(items, 1))), "batch input"


def _scan(lines: Iterator[tuple[int, Any]], where: str, finished: set[str]) -> tuple[int, int]:
    """Count jobs and already-finished ones; duplicate ids stop the batch before it starts."""
    first: dict[str, int] = {}
    total = skipped = 0
    for n, obj in lines:
        total += 1
        jid = job_id(obj)
        if jid is None:
            continue
        if jid in first:
            raise InvalidInput(f"{where} line {n}: job id {jid!r} is also on line {first[jid]}; "
                               "job ids must be unique. Nothing was run")
        first[jid] = n
        skipped += jid in finished
    return total, skipped


def _finished(path: Path) -> set[str]:
    """Ids whose last line in an existing output says "ok"; cuts a torn last line off."""
    if not path.exists():
        return set()
    last: dict[str, Any] = {}
    good = 0
    with path.open("rb+") as f:
        for raw in f:
            if not raw.endswith(b"\n"):  # killed mid-write: never a whole record
                f.truncate(good)
                log.warning("batch_output_torn_line_removed", path=str(path), offset=good)
                break
            good += len(raw)
            try:
                rec = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                continue
            if isinstance(rec, dict) and isinstance(rec.get("id"), str):
                last[rec["id"]] = rec.get("status")
    return {jid for jid, status in last.items() if status == "ok"}


# -- running ----------------------------------------------------------------------------
def _turn_id(jid: str, index: int, message: str) -> str:
    # Deterministic: a re-run sends the same id and the session answers it from the store
    # (the message is in it so that an edited message is a new turn, not a replay).
    return hashlib.sha256(f"batch\0{jid}\0{index}\0{message}".encode()).hexdigest()[:32]


def _answered(history: list[dict[str, Any]], messages: list[str]) -> list[str]:
    """Replies to the longest prefix of ``messages`` that ends the session's history."""
    pairs: list[list[str]] = []
    for m in history:
        if m.get("role") == "user":
            pairs.append([m.get("content") or "", ""])
        elif m.get("role") == "assistant" and pairs:
            pairs[-1][1] = m.get("content") or ""
    for k in range(min(len(pairs), len(messages)), 0, -1):
        if [p[0] for p in pairs[-k:]] == messages[:k]:
            return [p[1] for p in pairs[-k:]]
    return []


class _Runner:
    """Runs jobs with a timeout and retries; knows nothing about files."""

    def __init__(self, rt: Runtime, timeout: float | None, retries: int) -> None:
        self.rt = rt
        self.timeout = timeout or None
        self.retries = retries
        self._ensured: dict[str, asyncio.Future[None]] = {}
        self._handles: dict[int, tuple[Agent, Session]] = {}  # by the agent's id: its jobs' handles are copies

    def _deploy(self, agent: Agent) -> None:
        self.rt.ensure_agent(agent)
        if self.rt.agents_in_process and agent.model != NULL_MODEL:
            load_litellm()  # its import takes seconds: here, in a thread, not on the jobs' loop

    async def _ensure(self, agents: Iterable[Agent]) -> None:
        # Deploying an agent blocks on Ray (actor start-up): do it once per agent, off the loop.
        for a in agents:
            fut = self._ensured.get(a.key)
            if fut is None:
                fut = self._ensured[a.key] = asyncio.ensure_future(asyncio.to_thread(self._deploy, a))
            await fut

    def _session(self, job: Job) -> Session:
        """The handle of ``job``'s session: a copy of one handle per agent (Session.for_session)."""
        if job.agent is None:
            return Session(job.session_id, None, job.user_id, runtime=self.rt)
        made = self._handles.get(id(job.agent))
        if made is None or made[0] is not job.agent:
            session = Session(job.session_id, job.agent, job.user_id, runtime=self.rt)
            self._handles[id(job.agent)] = (job.agent, session)
            return session
        return made[1].for_session(job.session_id, job.user_id)

    async def _messages(self, job: Job, done: _Done) -> None:
        session = self._session(job)
        start = len(done.replies)
        if start == 0 and len(job.messages) > RECENT_TURNS:
            # Turn ids older than the session's replay window are forgotten: a long job finds
            # its answered messages in the history instead.
            done.replies = _answered(await session.aget_history(), job.messages)
            start = len(done.replies)
        for i in range(start, len(job.messages)):
            done.add(await session.aturn(job.messages[i], turn_id=_turn_id(job.id, i, job.messages[i])))

    async def _workflow(self, job: Job, done: _Done) -> None:
        session = self._session(job)

        def count(event: dict[str, Any]) -> None:
            if event["event"] == "task_finished":
                done.turns += 1

        wf = Workflow(job.tasks or [], session=session, name=f"batch-{job.id}", on_event=count)
        try:
            done.results = dict(await wf.arun())
        except WorkflowError as exc:
            done.results = dict(exc.results)
            raise

    async def run(self, job: Job, done: _Done | None = None, t0: float | None = None, attempts: int = 0,
                  error: BaseException | None = None) -> dict[str, Any]:
        """Run ``job`` to its output record; ``done``, ``attempts`` and ``error`` continue a job
        whose first attempt ran elsewhere (in a slice) and failed with ``error``."""
        t0 = time.perf_counter() if t0 is None else t0
        done = done or _Done()
        while True:
            if error is not None:  # the last attempt failed
                if not retryable(error) or attempts > self.retries:
                    return _record(job, done, attempts, t0, error, self.timeout)  # with the partial replies
                delay = min(_BACKOFF * 2 ** (attempts - 1), _MAX_BACKOFF) * random.uniform(0.5, 1.0)
                log.info("batch_job_retry", job=job.id, attempt=attempts, error=_describe(error, self.timeout))
                await asyncio.sleep(delay)
            attempts += 1
            try:
                await self._ensure({id(t.agent): t.agent for t in job.tasks or [] if t.agent}.values())
                await self._ensure([job.agent] if job.agent else [])
                body = self._workflow(job, done) if job.tasks is not None else self._messages(job, done)
                async with asyncio.timeout(self.timeout):  # no task of its own, unlike wait_for
                    await body
                return _record(job, done, attempts, t0, None, self.timeout)
            except (RepertoryError, TimeoutError) as exc:  # InvalidInput included: not retried
                error = exc
            except Exception as exc:  # a bug in a tool's module, say: report it, keep the batch going
                log.warning("batch_job_crashed", job=job.id, exc_info=True)
                return _record(job, done, attempts, t0, exc, self.timeout)

    def sliceable(self, job: Job) -> bool:
        """Whether ``job`` can go to its host as one chain of turns (batch.slices): an agent job
        within the replay window (the runtime then says where, in :meth:`chain`)."""
        return job.tasks is None and job.agent is not None and 0 < len(job.messages) <= RECENT_TURNS

    async def chain(self, job: Job) -> tuple[Any, list[TurnRequest]] | None:
        """Where ``job``'s turns go and their requests (with their deterministic turn ids);
        None if its session takes no slices (a dedicated one)."""
        await self._ensure([job.agent])
        session = self._session(job)
        where = self.rt.slice_of(session.ref)
        if where is None:
            return None
        return where, [await session.aturn_request(m, turn_id=_turn_id(job.id, i, m))
                       for i, m in enumerate(job.messages)]


def retryable(error: BaseException) -> bool:
    """Whether another attempt may succeed: not for bad input, which fails the same way again."""
    return isinstance(error, (RepertoryError, TimeoutError)) and not isinstance(error, InvalidInput)


def _describe(exc: BaseException, timeout: float | None) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return f"the job did not finish within {timeout:g} s"
    return " ".join(str(exc).split()) or type(exc).__name__


def _record(job: Job, done: _Done, attempts: int, t0: float, error: BaseException | None,
            timeout: float | None) -> dict[str, Any]:
    rec: dict[str, Any] = {"id": job.id, "line": job.line, "status": "ok" if error is None else "error",
                           "session_id": job.session_id}
    if job.tasks is None:
        rec["replies"] = done.replies
    else:
        rec["results"] = done.results
    rec.update(error=None if error is None else _describe(error, timeout),
               error_type=None if error is None else type(error).__name__,
               attempts=attempts, seconds=round(time.perf_counter() - t0, 4), turns=done.turns)
    return rec


def _bad_line(obj: Any, line: int, exc: RepertoryError) -> dict[str, Any]:
    return {"id": job_id(obj), "line": line, "status": "error", "session_id": None,
            "error": _describe(exc, None), "error_type": type(exc).__name__, "attempts": 0,
            "seconds": 0.0, "turns": 0}


# -- output -----------------------------------------------------------------------------
class _Output:
    """The output file, appended one flushed line per job."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Results hold conversation text: private to the owner, as the store is.
            self.file: IO[bytes] = os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        except OSError as exc:
            raise InvalidInput(f"cannot write the batch output {path}: {exc}") from exc
        self.lines = 0

    def write(self, rec: dict[str, Any], flush: bool = True) -> None:
        """Append ``rec``'s line; with ``flush=False`` it leaves with the next :meth:`flush`
        (a killed batch may then leave a torn last line, which the next run cuts off)."""
        self.file.write(json.dumps(rec, ensure_ascii=False, default=str).encode("utf-8") + b"\n")
        self.lines += 1
        if self.lines % _FSYNC_EVERY == 0:
            self.flush()
            os.fsync(self.file.fileno())
        elif flush:
            self.flush()

    def flush(self) -> None:
        self.file.flush()

    def close(self) -> None:
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()


class _RunRecord:
    """The batch's progress, kept in the store as the metadata of session ``batch-run-<digest
    of the output path>`` (the same for a re-run), so the inspector can show it: at the start,
    at most once a second while jobs finish, and at the end. Best effort: a failed write is
    logged, never fails the batch."""

    def __init__(self, rt: Runtime, out_path: Path, source: str, report: BatchReport) -> None:
        digest = hashlib.blake2b(str(out_path.resolve()).encode(), digest_size=6).hexdigest()
        self.session_id = f"{BATCH_RUN_PREFIX}{digest}"
        self.rt, self.report, self.source, self.output = rt, report, source, str(out_path)
        self.started = time.time()
        self._last = 0.0
        self._pending: asyncio.Task[None] | None = None

    def soon(self) -> None:
        if time.monotonic() - self._last >= RUN_RECORD_EVERY and (self._pending is None or self._pending.done()):
            self._last = time.monotonic()
            self._pending = asyncio.ensure_future(self.write("running"))

    async def write(self, status: str) -> None:
        if status != "running" and self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)
        r = self.report
        run = {"status": status, "input": self.source, "output": self.output, "total": r.total,
               "skipped": r.skipped, "ok": r.ok, "failed": r.failed, "turns": r.turns,
               "started_at": self.started, "updated_at": time.time(), "seconds": round(r.seconds, 3)}
        try:
            await self.rt.update_fields(Session(self.session_id, runtime=self.rt).ref, "metadata",
                                        {"batch_run": run}, False)
        except RepertoryError as exc:
            log.warning("batch_progress_not_recorded", error=str(exc))


RUN_RECORD_EVERY = 1.0  # seconds between progress records while jobs finish
BATCH_RUN_PREFIX = "batch-run-"  # the sessions holding batch runs' progress (_RunRecord)


# -- the batch --------------------------------------------------------------------------
async def _abatch(rt: Runtime, input: Source, output: str | os.PathLike[str], *,
                  agents: dict[str, Agent] | str | os.PathLike[str] | None = None,
                  default_agent: Agent | str | None = None, concurrency: int = 64,
                  timeout: float | None = 300.0, retries: int = 2,
                  progress: Callable[[BatchReport], None] | None = None) -> BatchReport:
    for name, n, low in (("concurrency", concurrency, 1), ("retries", retries, 0)):
        if isinstance(n, bool) or not isinstance(n, int) or n < low:
            raise InvalidInput(f"{name} must be an int of at least {low}, got {n!r}")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout < 0):
        raise InvalidInput(f"timeout must be a number of seconds (0 or None: no limit), got {timeout!r}")
    agent_map = resolve_agents(agents)
    default = pick_default(default_agent, agent_map)
    reader, where = _reader(input)
    out_path = Path(output).expanduser()
    if isinstance(input, (str, os.PathLike)) and out_path.resolve() == Path(input).expanduser().resolve():
        raise InvalidInput(f"the output {out_path} is the input; write the results to another file")
    t0 = time.perf_counter()
    finished = await asyncio.to_thread(_finished, out_path)
    total, skipped = await asyncio.to_thread(_scan, reader(), where, finished)
    report = BatchReport(total=total, skipped=skipped, output=str(out_path))
    log.info("batch_started", input=where, output=str(out_path), jobs=total, skipped=skipped,
             concurrency=concurrency)
    runner = _Runner(rt, timeout, retries)
    recorder = _RunRecord(rt, out_path, where, report)
    out = _Output(out_path)
    sem = asyncio.Semaphore(concurrency)
    running: set[asyncio.Task[None]] = set()
    fatal: list[BaseException] = []

    def emit(rec: dict[str, Any], flush: bool = True) -> None:
        out.write(rec, flush)
        if rec["status"] == "ok":
            report.ok += 1
        else:
            report.failed += 1
            if len(report.errors) < _MAX_ERRORS:
                report.errors[rec["id"] or f"line {rec['line']}"] = f"{rec['error_type']}: {rec['error']}"
            log.info("batch_job_failed", job=rec["id"], line=rec["line"], error=rec["error"])
        report.turns += rec["turns"]
        report.seconds = time.perf_counter() - t0
        tell()
        recorder.soon()

    def tell() -> None:
        if progress is not None:
            try:
                progress(report)
            except Exception:  # a broken progress display must not lose results
                log.warning("batch_progress_callback_failed", exc_info=True)

    def finish(rec: dict[str, Any], flush: bool = True) -> None:
        try:
            emit(rec, flush)
        except Exception as exc:  # the output cannot be written: stop the batch
            fatal.append(exc)
        finally:
            sem.release()

    async def run_one(job: Job, done: _Done | None = None, t0: float | None = None, attempts: int = 0,
                      error: BaseException | None = None) -> None:
        try:
            rec = await runner.run(job, done, t0, attempts, error)
        except BaseException:
            sem.release()
            raise
        finish(rec)

    def spawn(*args: Any) -> None:
        task = asyncio.ensure_future(run_one(*args))
        running.add(task)
        task.add_done_callback(running.discard)

    def settle(sent: tuple[Job, float], result: ChainResult | None, failed: BaseException | None) -> None:
        job, t0 = sent
        if result is None:  # the slice's call failed (its host died): the job goes again, turn by turn
            log.info("batch_slice_failed", job=job.id, error=str(failed))
            spawn(job, None, t0)
            return
        done = _Done()
        for reply in result.replies:
            done.add(reply)
        if result.error is not None and retryable(result.error) and runner.retries > 0:
            spawn(job, done, t0, 1, result.error)  # the rest of it, turn by turn, after a backoff
        else:
            finish(_record(job, done, 1, t0, result.error, runner.timeout), flush=False)

    def settled() -> None:  # a slice's lines leave in one write
        try:
            out.flush()
        except Exception as exc:
            fatal.append(exc)

    slicer: Slicer[tuple[Job, float]] = Slicer(rt, runner.timeout, settle, settled)

    async def start(job: Job) -> None:
        """Send ``job`` in a slice where it can go in one, else run it on its own."""
        if runner.sliceable(job):
            t0 = time.perf_counter()
            try:
                chain = await runner.chain(job)
            except InvalidInput as exc:  # a message too long, say: it fails the same way every time
                finish(_record(job, _Done(), 1, t0, exc, runner.timeout))
                return
            except Exception:  # noqa: BLE001 - the agent did not deploy, say: the job's own path retries
                chain = None
            if chain is not None:
                slicer.add(chain[0], chain[1], (job, t0))
                return
        spawn(job)

    tell()
    await recorder.write("running")
    try:
        for n, obj in reader():
            if fatal or slicer.error:
                raise fatal[0] if fatal else slicer.error
            jid = job_id(obj)
            if jid is not None and jid in finished:
                continue
            try:
                job = parse_job(obj, n, agent_map, default)
            except RepertoryError as exc:
                emit(_bad_line(obj, n, exc))
                continue
            await sem.acquire()  # at most `concurrency` jobs exist at once, however long the input
            await start(job)
        slicer.flush()
        while running or slicer.tasks:
            await asyncio.wait(running | slicer.tasks)
        if fatal or slicer.error:
            raise fatal[0] if fatal else slicer.error
    finally:
        slicer.cancel()
        for task in running:
            task.cancel()
        if running or slicer.tasks:
            await asyncio.gather(*running, *slicer.tasks, return_exceptions=True)
        out.close()
    report.seconds = time.perf_counter() - t0
    report.slices, report.sliced_jobs = slicer.slices, slicer.chains
    await recorder.write("finished")
    log.info("batch_finished", ok=report.ok, failed=report.failed, skipped=report.skipped,
             seconds=round(report.seconds, 3), jobs_per_s=round(report.jobs_per_s, 1))
    return report


async def abatch(input: Source, output: str | os.PathLike[str], *,
                 agents: dict[str, Agent] | str | os.PathLike[str] | None = None,
                 default_agent: Agent | str | None = None, concurrency: int = 64,
                 timeout: float | None = 300.0, retries: int = 2,
                 progress: Callable[[BatchReport], None] | None = None) -> BatchReport:
    """Run the jobs of ``input`` (a JSONL path or an iterable of dicts); see the module docstring.

    ``agents``: dict name -> Agent, or the path of an agents file (:mod:`repertory.agents.spec`).
    ``default_agent``: for jobs that name none (a name or an Agent). ``concurrency``: jobs at
    once. ``timeout``: seconds per attempt of a job (None: no limit). ``retries``: attempts
    after a failure, with backoff (input errors are not retried). ``progress``: called with
    the running :class:`BatchReport` at the start and after each job. Returns once every job
    has a line in ``output``. An iterable that is not a list is read into memory first.
    """
    return await _abatch(get_runtime(), input, output, agents=agents, default_agent=default_agent,
                         concurrency=concurrency, timeout=timeout, retries=retries, progress=progress)


def batch(input: Source, output: str | os.PathLike[str], *,
          agents: dict[str, Agent] | str | os.PathLike[str] | None = None,
          default_agent: Agent | str | None = None, concurrency: int = 64,
          timeout: float | None = 300.0, retries: int = 2,
          progress: Callable[[BatchReport], None] | None = None) -> BatchReport:
    """Sync :func:`abatch`; ``progress`` is then called on repertory's loop thread."""
    return run_sync(_abatch, get_runtime(), input, output, agents=agents, default_agent=default_agent,
                    concurrency=concurrency, timeout=timeout, retries=retries, progress=progress)
