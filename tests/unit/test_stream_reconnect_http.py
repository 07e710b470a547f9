"""A remote stream whose connection breaks reconnects with Last-Event-ID (issue 15 item 3).

The server runs over the local runtime (the Ray runtime's SSE path is tested in
tests/integration/test_busy_streams_ray.py); between it and the client, a TCP proxy on
127.0.0.1 cuts the first connection after its third ``delta`` event, as a dropped network
would. The client reconnects on its own and the text it yields is the whole reply, once.
"""

from __future__ import annotations

import asyncio

import pytest

from openai_server import OpenAIServer
from repertory import Agent, Session, tokens
from repertory.server import ServerConfig, serve_in_thread
from repertory.tokens import Keyring

RING = Keyring({"k1": "reconnect-secret-" + "r" * 20})
LONG = "one two three four five six seven eight nine ten eleven twelve"


@pytest.fixture
def model():
    with OpenAIServer() as srv:
        srv.chunk_delay = 0.05
        yield srv


@pytest.fixture
def server(rt, model):
    agent = Agent("Slow", model="openai/test-model", api_base=model.base_url, api_key="k", num_retries=0)
    handle = serve_in_thread(ServerConfig(port=0, secret_keys=RING, rate_limit=None, agents={"slow": agent}))
    yield handle
    handle.stop()


class CuttingProxy:
    """Forwards TCP to the server; cuts the first connection after ``cut_after`` delta events."""

    def __init__(self, port: int, cut_after: int) -> None:
        self.port, self.cut_after = port, cut_after
        self.connections = 0
        self.cut = False

    async def __aenter__(self) -> CuttingProxy:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url_port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.connections += 1
        cutting = not self.cut
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.port)

        async def upstream() -> None:
            while data := await client_r.read(65536):
                up_w.write(data)
                await up_w.drain()

        async def downstream() -> None:
            seen = 0
            while data := await up_r.read(65536):
                seen += data.count(b"event: delta")
                client_w.write(data)
                await client_w.drain()
                if cutting and seen >= self.cut_after:
                    self.cut = True
                    return  # drop the connection mid-stream

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        client_w.close()
        up_w.close()


async def test_a_broken_stream_reconnects_with_the_last_event_id(server, model):
    port = int(server.url.split(":")[2].split("/")[0])
    session_id = "reconnect"
    async with CuttingProxy(port, cut_after=3) as proxy:
        remote = Session(agent_url=f"http://127.0.0.1:{proxy.url_port}/agent", session_id=session_id,
                         token=tokens.issue(session_id, secret=RING), agent="slow")
        chunks = [c async for c in remote.astream(LONG, turn_id="t-re")]
        await remote.aclose()
    assert proxy.cut and proxy.connections >= 2  # it did break, and the client came back
    assert "".join(chunks) == f"echo: {LONG}"  # each chunk once
    assert [c.event_id for c in chunks][-1] == f"t-re:{len(f'echo: {LONG}')}"
    assert len(model.requests) == 1  # the reconnect ran nothing again
    assert [m["content"] for m in Session(session_id).get_history()] == [LONG, f"echo: {LONG}"]
