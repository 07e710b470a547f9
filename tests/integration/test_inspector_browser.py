"""The session inspector in a real browser: Playwright driving Debian's Chromium against
``repertory serve`` (a subprocess, as a user starts it, on the default Ray runtime) on 127.0.0.1.

Sessions are seeded before the server starts: many straight through the store (the list's
paging), a few through the local runtime on the same SQLite file (a checkpointed chat, a
workflow waiting for approval, another user's session). Screenshots of each page go to
``$REPERTORY_TEST_ARTIFACTS`` (default: the test's temporary folder).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

import repertory
from repertory import Session, Task, Workflow, tokens
from repertory.stores import SQLiteStore
from repertory.tokens import Keyring

pytestmark = pytest.mark.ray

CHROMIUM = "/usr/bin/chromium"
SECRET = "browser-secret-" + "s" * 24
ADMIN = "browser-admin-" + "a" * 20
RING = Keyring({"k1": SECRET})
BULK = 120  # sessions of one user written straight to the store: three pages of 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(db: Path) -> None:
    url = f"sqlite:///{db}"

    async def bulk() -> None:
        from repertory.state.session_state import SessionState

        store = SQLiteStore(db)
        try:
            async def one(i: int) -> None:
                st = SessionState.new(f"bulk/b{i:04d}", f"b{i:04d}", "bulk", None)
                write, _, _ = st.append_write([{"role": "user", "content": f"bulk {i}", "timestamp": time.time()}])
                await store.commit(write)

            await asyncio.gather(*(one(i) for i in range(BULK)))
        finally:
            await store.close()

    asyncio.run(bulk())
    repertory.init(runtime="local", store=url)
    try:
        chat = Session("alice-chat", user_id="alice")
        chat.chat("first message")
        chat.create_checkpoint("after the first turn")
        chat.chat("second message")
        flow = Session("alice-flow", user_id="alice")
        tasks = [Task("draft the release notes", name="draft"),
                 Task("publish the release", name="publish", depends_on=["draft"], requires_approval=True)]
        assert Workflow(tasks, session=flow, name="release").run().status == "awaiting_approval"
        Session("bob-secret", user_id="bob").chat("bob's private note")
        repertory.SharedState("release-board").set("status", "drafting")
    finally:
        repertory.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``repertory serve`` over the seeded store: (base URL, artifacts folder)."""
    tmp = tmp_path_factory.mktemp("inspector")
    artifacts = Path(os.environ.get("REPERTORY_TEST_ARTIFACTS") or tmp / "artifacts") / "inspector"
    artifacts.mkdir(parents=True, exist_ok=True)
    db = tmp / "state.db"
    seed(db)
    port = _free_port()
    env = {**os.environ, "REPERTORY_SECRET_KEYS": f"k1:{SECRET}", "REPERTORY_ADMIN_KEY": ADMIN,
           "REPERTORY_HOME": str(tmp)}
    env.pop("RAY_ADDRESS", None)  # the default: a private local Ray instance
    log = (artifacts / "server.log").open("w")
    proc = subprocess.Popen([str(Path(sys.executable).with_name("repertory")), "serve", "--host", "127.0.0.1",
                             "--port", str(port), "--store", f"sqlite:///{db}", "--rate-limit", ""],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{base}/agent/ready", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"repertory serve did not start; see {artifacts / 'server.log'}")
        time.sleep(0.2)
    yield base, artifacts
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "install Debian's Chromium: apt-get install -y chromium (.ci/run does)"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def sign_in(browser, base: str, key: str):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.set_default_timeout(15_000)
    expect.set_options(timeout=15_000)
    page.errors = []  # script errors fail the test (see done)
    page.on("pageerror", lambda exc: page.errors.append(exc))
    page.goto(f"{base}/ui")
    page.fill("#token", key)
    page.click("#signin")
    page.wait_for_selector("#sessions tbody tr")
    return page


def done(page) -> None:
    assert not page.errors, page.errors
    page.close()


def api(base: str, key: str, path: str, **kw) -> httpx.Response:
    return httpx.request(kw.pop("method", "GET"), f"{base}/agent/inspect{path}",
                         headers={"Authorization": f"Bearer {key}"}, timeout=30, **kw)


def test_admin_lists_finds_reads_restores_and_approves(served, browser):
    base, artifacts = served
    page = sign_in(browser, base, ADMIN)
    # The list, paged on the server: 50 a page of every user's sessions.
    assert page.text_content("#range").startswith("1–50 of ")
    assert int(page.text_content("#range").rsplit(" ", 1)[-1]) == BULK + 3
    page.screenshot(path=str(artifacts / "01-sessions.png"), full_page=True)
    page.click("#next")
    expect(page.locator("#range")).to_have_text(re.compile(r"^51–100 of "))

    # Find a session by id and open its transcript.
    page.fill("#search", "alice-chat")
    page.click("#apply")
    expect(page.locator("#sessions tbody tr")).to_have_count(1)
    row = page.locator("#sessions tbody tr").first
    assert "alice" in row.text_content() and "host-" in row.text_content()
    row.click()
    page.wait_for_selector("#transcript .msg")
    transcript = page.locator("#transcript")
    assert "first message" in transcript.text_content() and "second message" in transcript.text_content()
    assert page.locator("#transcript .msg.assistant .latency").count() >= 1  # per-turn latency and tokens
    page.screenshot(path=str(artifacts / "02-session.png"), full_page=True)

    # The live tail: a turn sent over the API appears without a reload (SSE).
    token = tokens.issue("alice-chat", "alice", secret=RING)
    r = httpx.post(f"{base}/agent/sessions/alice-chat/chat", json={"message": "third message over http"},
                   headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert r.status_code == 200, r.text
    expect(page.locator("#transcript")).to_contain_text("third message over http")

    # Restore the checkpoint (with confirmation): the transcript goes back to the first turn.
    page.click("#timeline tr[data-checkpoint] button.restore")
    page.wait_for_selector("#confirm[open]")
    page.click("#confirm-ok")
    expect(page.locator("#transcript")).not_to_contain_text("second message")
    assert "first message" in page.text_content("#transcript")
    history = httpx.get(f"{base}/agent/sessions/alice-chat/history", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).json()
    assert [m["content"] for m in history if m["role"] == "user"] == ["first message"]
    page.screenshot(path=str(artifacts / "03-restored.png"), full_page=True)

    # Approve the task that waits for approval.
    page.goto(f"{base}/ui#/session/alice/alice-flow")
    page.wait_for_selector("#workflows tr[data-task=publish] button.approve")
    assert page.locator("#workflows tr[data-task=draft]").text_content().count("done") == 1
    page.screenshot(path=str(artifacts / "04-workflow-pending.png"), full_page=True)
    page.click("#workflows tr[data-task=publish] button.approve")
    page.click("#confirm-ok")
    expect(page.locator("#workflows tr[data-task=publish]")).to_contain_text("approved")
    entry = api(base, ADMIN, "/sessions/alice-flow?user_id=alice").json()["workflows"]["release"]["tasks"]["publish"]
    assert entry["status"] == "approved"
    page.screenshot(path=str(artifacts / "05-workflow-approved.png"), full_page=True)

    # A shared state (of a multi-agent session), read from the store by id.
    page.fill("#shared-id", "release-board")
    page.click("#shared-load")
    expect(page.locator("#shared-values")).to_contain_text("drafting")

    # The cluster: hosts, resident sessions, latency plots.
    page.click("#nav-cluster")
    page.wait_for_selector("#hosts tbody tr")
    assert page.locator("#cluster svg").count() >= 3
    hosts = api(base, ADMIN, "/cluster").json()
    assert sum(h["turns"] for h in hosts) >= 1 and all(h["host"].startswith("host-") for h in hosts)
    page.screenshot(path=str(artifacts / "06-cluster.png"), full_page=True)
    done(page)


def test_a_second_user_sees_only_their_own_sessions(served, browser):
    base, artifacts = served
    r = api(base, ADMIN, "/tokens", method="POST", json={"user_id": "bob"})
    assert r.status_code == 200, r.text
    bob = r.json()["token"]
    page = sign_in(browser, base, bob)
    rows = page.locator("#sessions tbody tr")
    assert rows.count() == 1 and "bob-secret" in rows.first.text_content()
    assert "alice" not in page.text_content("#sessions")
    assert page.locator("#nav-cluster").is_hidden()
    page.screenshot(path=str(artifacts / "07-bob-sessions.png"), full_page=True)
    page.goto(f"{base}/ui#/session/alice/alice-chat")
    page.wait_for_selector("[role=alert]")
    assert "own user's sessions" in page.text_content("[role=alert]")
    page.screenshot(path=str(artifacts / "08-bob-denied.png"), full_page=True)
    done(page)
    # The API answers the same, whatever the page does.
    listed = api(base, bob, "/sessions?limit=200").json()
    assert [i["key"] for i in listed["items"]] == ["bob/bob-secret"] and listed["total"] == 1
    assert api(base, bob, "/sessions?user_id=alice").status_code == 403
    assert api(base, bob, "/sessions/alice-chat?user_id=alice").status_code == 403
    assert api(base, bob, "/sessions/alice-chat").status_code == 404  # bob's own alice-chat: none
    assert api(base, bob, "/sessions/alice-chat/restore?user_id=alice", method="POST",
               json={"checkpoint": 1}).status_code == 403
    assert api(base, bob, "/cluster").status_code == 403
    assert api(base, bob, "/tokens", method="POST", json={"user_id": "alice"}).status_code == 403
    assert api(base, "not-a-token", "/sessions").status_code == 401
