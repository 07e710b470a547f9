"""The store's lone calls put the same bytes on the wire as redis-py would (packed by hiredis)."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from repertory.stores.redis import load_commands, pack_load, packed


def _redis_py(*cmds: tuple) -> bytes:
    return b"".join(bytes(c) for c in Connection().pack_commands(cmds))


@pytest.mark.parametrize("args", [
    ("GET", "k"),
    ("EVALSHA", "ab" * 20, 2, "rp:{ké}:meta", "rp:{ké}:msgs", 0, -3, 2**36, 1.5, 0.1, "", b"", b"\x00\r\n" * 5000),
])
def test_a_command_is_packed_as_redis_py_packs_it(args):
    assert packed(args) == _redis_py(args)
    assert packed(args, ("PING",)) == _redis_py(args, ("PING",))


def test_a_load_is_packed_as_redis_py_packs_its_commands():
    meta, msgs = "p:{user@example.com/s:1 ✓}:meta", "p:{user@example.com/s:1 ✓}:msgs"
    assert pack_load(meta, msgs) == _redis_py(*load_commands(meta, msgs))


@pytest.mark.parametrize("bad", [True, None, object()])
def test_what_redis_py_refuses_is_refused(bad):
    with pytest.raises(DataError):
        packed(("SET", "k", bad))
