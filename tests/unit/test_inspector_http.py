"""The inspector's HTTP side on the local runtime: the page's headers and files, token issuing,
and the live tail as server-sent events (uvicorn on 127.0.0.1, httpx)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from repertory import Session
from repertory.server import ServerConfig, serve_in_thread
from repertory.tokens import Keyring

RING = Keyring({"k1": "http-inspector-secret-" + "q" * 16})
ADMIN = "http-admin-key-" + "w" * 16


@pytest.fixture
def server(rt):
    handle = serve_in_thread(ServerConfig(port=0, secret_keys=RING, admin_key=ADMIN, rate_limit=None))
    yield handle.url.removesuffix("/agent")
    handle.stop()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_the_page_is_served_locally_with_a_strict_policy(server):
    page = httpx.get(f"{server}/ui")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    js = httpx.get(f"{server}/ui/static/app.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    for bad in ["nope.js", "..%2F__init__.py", "index.html"]:  # only the listed assets
        assert httpx.get(f"{server}/ui/static/{bad}").status_code == 404
    assert "/ui" not in httpx.get(f"{server}/openapi.json").json()["paths"]
    assert "/agent/inspect/sessions" in httpx.get(f"{server}/openapi.json").json()["paths"]


def test_only_the_admin_issues_user_tokens_and_they_see_their_own(server):
    Session("mine", user_id="carol").chat("hello")
    Session("theirs", user_id="dave").chat("hello")
    r = httpx.post(f"{server}/agent/inspect/tokens", json={"user_id": "carol"}, headers=bearer(ADMIN))
    assert r.status_code == 200
    carol = r.json()["token"]
    assert httpx.get(f"{server}/agent/inspect/whoami", headers=bearer(carol)).json() == {"admin": False,
                                                                                     "user_id": "carol"}
    listed = httpx.get(f"{server}/agent/inspect/sessions", headers=bearer(carol)).json()
    assert [i["key"] for i in listed["items"]] == ["carol/mine"]
    assert httpx.post(f"{server}/agent/inspect/tokens", json={"user_id": "dave"},
                      headers=bearer(carol)).status_code == 403
    assert httpx.get(f"{server}/agent/sessions/mine/history", headers=bearer(carol)).status_code == 403
    assert httpx.get(f"{server}/agent/inspect/sessions", params={"limit": 0},
                     headers=bearer(ADMIN)).status_code == 422


async def test_the_tail_streams_new_messages_and_ends_after_wait(server):
    s = Session("tailed", user_id="carol")
    await s.achat("one")
    async with httpx.AsyncClient(timeout=30) as client:
        missing = await client.get(f"{server}/agent/inspect/sessions/none/tail", params={"user_id": "carol"},
                                   headers=bearer(ADMIN))
        assert missing.status_code == 404
        events: list[tuple[str, dict]] = []
        async with client.stream("GET", f"{server}/agent/inspect/sessions/tailed/tail",
                                 params={"user_id": "carol", "after": 2, "wait": 3}, headers=bearer(ADMIN)) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            sender = asyncio.ensure_future(s.achat("two"))
            event = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    events.append((event, json.loads(line[6:])))
            await sender
    kinds = [e for e, _ in events]
    assert kinds[-1] == "end" and "messages" in kinds
    first = next(d for e, d in events if e == "messages")
    assert first["messages"][0]["content"] == "two" and first["messages"][0]["index"] == 2
