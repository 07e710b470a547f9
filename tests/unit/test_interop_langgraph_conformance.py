"""LangGraph's own conformance suite (langgraph-checkpoint-conformance, from PyPI) against
RepertorySaver on SQLite and on Redis, through its async methods and, by an adapter that
answers the async calls with the sync methods, through its sync methods too."""

from __future__ import annotations

import asyncio
import uuid

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.capabilities import DetectedCapabilities  # noqa: E402

from redis_server import TEST_DB_URL, drop_redis_keys  # noqa: E402
from repertory.interop.langgraph import RepertorySaver  # noqa: E402


class SyncPathSaver(RepertorySaver):
    """The async verbs answered by the sync ones (on a worker thread, as a sync caller would)."""

    async def aget_tuple(self, config):
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config, *, filter=None, before=None, limit=None):
        for tup in await asyncio.to_thread(lambda: list(self.list(config, filter=filter, before=before,
                                                                  limit=limit))):
            yield tup

    async def aput(self, config, checkpoint, metadata, new_versions):
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config, writes, task_id, task_path=""):
        return await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id):
        return await asyncio.to_thread(self.delete_thread, thread_id)

    async def acopy_thread(self, source_thread_id, target_thread_id):
        return await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def adelete_for_runs(self, run_ids):
        return await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def aprune(self, thread_ids, *, strategy="keep_latest"):
        return await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


def _registered(backend: str, cls: type[RepertorySaver], tmp_path):
    @checkpointer_test(name=f"{cls.__name__}[{backend}]")
    async def factory():
        if backend == "sqlite":
            saver = cls(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
            yield saver
            await saver.aclose()
        else:
            prefix = f"rptest-{uuid.uuid4().hex}"
            saver = cls(f"{TEST_DB_URL}?prefix={prefix}")
            yield saver
            await saver.aclose()
            await drop_redis_keys(prefix)
    return factory


@pytest.mark.parametrize("cls", [RepertorySaver, SyncPathSaver], ids=["async", "sync"])
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def test_conformance(backend, cls, tmp_path):
    report = await validate(_registered(backend, cls, tmp_path))
    report.print_report()
    assert report.passed_all_base(), report
    failed = {name: r.failures for name, r in report.results.items() if r.detected and not r.passed}
    assert report.passed_all() and not failed, failed



def test_every_capability_of_the_suite_is_detected(tmp_path):
    saver = RepertorySaver(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        assert not DetectedCapabilities.from_instance(saver).missing
        assert not DetectedCapabilities.from_instance(SyncPathSaver(saver.store)).missing
    finally:
        saver.close()
