"""Seed page: "Remote Sessions" (Connecting to Remote Agents) and "Security Considerations".

A server is started here, in this process, on a free port of 127.0.0.1 (in production:
`repertory serve` with REPERTORY_SECRET_KEYS set); the client gets its session token through
REPERTORY_TOKEN, so the seed's snippet runs as written, with the server's URL.
"""
import os
import secrets

from repertory import tokens
from repertory.server import ServerConfig, serve_in_thread

secret = secrets.token_urlsafe(32)  # the server's key: REPERTORY_SECRET_KEYS in production
server = serve_in_thread(ServerConfig(port=0, secret_keys=secret))
agent_url = server.url  # http://127.0.0.1:<port>/agent
os.environ["REPERTORY_TOKEN"] = tokens.issue("user_456", ttl=600, secret=secret)  # handed to the client

from repertory import Session

# Connect to remote agent
remote_session = Session(
    agent_url=agent_url,
    session_id="user_456"
)
# Interact normally
response = remote_session.chat("Hello from remote client")
# Session state is maintained on the server

# Another client of the same session (with a token for it) sees the same state.
again = Session(agent_url=agent_url, session_id="user_456", token=tokens.issue("user_456", secret=secret))
assert [m["content"] for m in again.get_history()] == ["Hello from remote client", response]
assert "".join(again.stream("Stream this")) == again.get_history()[-1]["content"]

# The seed's SecureSession, built in: signed, expiring tokens bound to the session (and user).
local = Session(session_id="user_456")
token = local.generate_session_token(secret=secret)
assert local.verify_session_token(token, secret=secret)
assert not local.verify_session_token(token[:-1] + ("A" if token[-1] != "A" else "B"), secret=secret)

server.stop()
del os.environ["REPERTORY_TOKEN"]
