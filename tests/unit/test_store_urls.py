"""Store URLs with secrets never reach an error message or a log line in clear."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from repertory.errors import InvalidInput, StoreError
from repertory.stores import redact_url
from repertory.stores.base import CheckpointInfo, CheckpointRecord, StateWrite
from repertory.stores.factory import open_store
from repertory.stores.factory import redact_url as factory_redact_url


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://:secret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    ("rediss://alice:secret@redis.example.com:6380/2?prefix=rp",
     "rediss://alice:***@redis.example.com:6380/2?prefix=rp"),
    ("redis://secret@127.0.0.1/0", "redis://***@127.0.0.1/0"),  # a lone user part may be a password
    ("redis://127.0.0.1:6379/0?password=secret&prefix=x", "redis://127.0.0.1:6379/0?password=***&prefix=x"),
    ("redis://:p%40ss@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
    ("redis://:se@cr/et@host:6379/0", "redis://:***@host:6379/0"),  # unencoded '@' and '/' in it
    ("redis://:secret@host:notaport/0", "redis://:***@host:notaport/0"),  # unparseable port
    ("redis://:secret@[::1/0", "redis://:***@[::1/0"),  # unbalanced bracket: urlsplit raises
    ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
    ("sqlite:////home/me@work/state.db", "sqlite:////home/me@work/state.db"),
    ("memory://", "memory://"),
    ("not a url", "not a url"),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected
    assert factory_redact_url is redact_url


def _texts(exc: BaseException) -> list[str]:
    """The message and repr of an error and of every error chained to it."""
    out: list[str] = []
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        out += [str(e), repr(e)]
        todo += [e.__cause__, e.__context__]
    return out


@pytest.mark.parametrize("url", [
    "redis://:secret@127.0.0.1:1/0",
    "redis://alice:secret@127.0.0.1:1/0",
    "redis://127.0.0.1:1/0?password=secret",
])
async def test_a_failing_redis_store_never_shows_its_password(url):
    texts: list[str] = []
    with capture_logs() as logs:
        store = open_store(url)
        texts.append(store.url)
        cp = CheckpointRecord(CheckpointInfo("k", "c1", "checkpoint", 1, 1.0, 1), b"D")
        verbs = [
            store.load("k"), store.commit(StateWrite("k", 0, b"m", [b"a"])), store.delete("k"),
            store.touch("k", None), store.list_sessions(), store.put_checkpoint(cp),
            store.get_checkpoint("k", "c1"), store.list_checkpoints("k"), store.delete_checkpoints("k", ["c1"]),
        ]
        try:
            for verb in verbs:
                with pytest.raises(StoreError) as info:
                    await verb
                texts += _texts(info.value)
        finally:
            await store.close()
        with pytest.raises(StoreError) as info:
            await store.load("k")  # closed
        texts += _texts(info.value)
    assert logs, "the outage was not logged"
    texts += [repr(entry) for entry in logs]
    assert not [t for t in texts if "secret" in t]


@pytest.mark.parametrize("url", ["bogus://:secret@127.0.0.1:6379/0", "redis://:secret@host:notaport/0",
                                 "redis://:secret@[::1/0"])
def test_refused_store_urls_are_redacted(url):
    with pytest.raises(InvalidInput) as info:
        open_store(url)
    assert not [t for t in _texts(info.value) if "secret" in t]


def test_refused_redis_urls_are_redacted():
    from repertory.stores.redis import RedisStore

    with pytest.raises(InvalidInput) as info:
        RedisStore("http://:secret@127.0.0.1:6379/0")
    assert not [t for t in _texts(info.value) if "secret" in t]


@pytest.mark.parametrize("url", [None, 5])
def test_open_store_refuses_what_is_not_a_url(url):
    with pytest.raises(InvalidInput, match="unknown store URL"):
        open_store(url)
