"""A small OpenAI-compatible chat server on 127.0.0.1 for tests (stdlib only).

Behaviour, chosen by the last messages it receives:
- tools offered and no tool result yet: answer with a tool call to the first tool,
  every required argument set to "Paris";
- a tool result present: answer "The tool said: <result>";
- otherwise: echo "echo: <last user message>".
``script`` (a function of the request body returning a reply text, an assistant message
dict, or None) answers first, when it returns one: a test plays a model that follows one of
repertory's own prompts, or asks for tools in several steps.
Like real providers, a chat request whose assistant tool call has no ``tool`` message
answering it (by ``tool_call_id``) before the next non-tool message is refused with 400;
``chat_calls`` counts the chat requests that were answered.
``/embeddings`` answers a deterministic bag-of-words vector per input (64 hashed dimensions,
normalised), so texts that share words are near. ``fail_next`` makes the next N requests answer 500, to exercise retries; ``delay`` (seconds)
is slept before each answer, to observe parallelism; ``chunk_delay`` (seconds) between the chunks of
a streamed answer, so that a test can act in the middle of a stream.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _bag_of_words(text: str, size: int = 64) -> list[float]:
    vec = [0.0] * size
    for word in text.lower().replace("?", " ").replace(".", " ").split():
        vec[int(hashlib.sha256(word.encode()).hexdigest(), 16) % size] += 1.0
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


def _unpaired_tool_call(messages: list[dict]) -> str | None:
    """The id of a tool call no tool message answers, as providers check it; None if all are."""
    pending: set[str] = set()
    for m in messages:
        if m.get("role") == "tool":
            pending.discard(m.get("tool_call_id"))
            continue
        if pending:
            return sorted(pending)[0]
        if m.get("role") == "assistant":
            pending = {c.get("id") for c in m.get("tool_calls") or ()}
    return sorted(pending)[0] if pending else None


class _Handler(BaseHTTPRequestHandler):
    server: "OpenAIServer"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append(body)
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.server.fail_next > 0:
            self.server.fail_next -= 1
            self._send(500, {"error": {"message": "injected failure", "type": "server_error"}})
            return
        if self.path.rstrip("/").endswith("/embeddings"):
            inputs = body.get("input")
            inputs = [inputs] if isinstance(inputs, str) else inputs
            data = [{"object": "embedding", "index": i, "embedding": _bag_of_words(t)} for i, t in enumerate(inputs)]
            self._send(200, {"object": "list", "data": data, "model": body.get("model"),
                             "usage": {"prompt_tokens": len(inputs), "total_tokens": len(inputs)}})
            return
        messages = body.get("messages", [])
        unpaired = _unpaired_tool_call(messages)
        if unpaired is not None:
            self._send(400, {"error": {"message": (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                f"each 'tool_call_id'. The following tool_call_ids did not have response messages: {unpaired}"),
                "type": "invalid_request_error", "param": "messages"}})
            return
        with self.server.lock:
            self.server.chat_calls += 1
        tools = body.get("tools") or []
        tool_results = [m for m in messages if m.get("role") == "tool"]
        scripted = self.server.script(body) if self.server.script else None
        if isinstance(scripted, dict):
            message = dict(scripted, role="assistant")
            finish = "tool_calls" if message.get("tool_calls") else "stop"
        elif scripted is not None:
            message = {"role": "assistant", "content": scripted}
            finish = "stop"
        elif tools and not tool_results:
            fn = tools[0]["function"]
            args = {name: "Paris" for name in fn.get("parameters", {}).get("required", [])}
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": fn["name"], "arguments": json.dumps(args)}}]}
            finish = "tool_calls"
        elif tool_results:
            message = {"role": "assistant", "content": f"The tool said: {tool_results[-1]['content']}"}
            finish = "stop"
        else:
            last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
            message = {"role": "assistant", "content": f"echo: {last}"}
            finish = "stop"
        usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
        if body.get("stream"):
            self._stream(body, message, finish, usage)
            return
        self._send(200, {"id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                         "model": body.get("model"), "usage": usage,
                         "choices": [{"index": 0, "message": message, "finish_reason": finish}]})

    def _send(self, status, payload):
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client hung up (a cancelled call)
            pass

    def _stream(self, body, message, finish, usage):
        try:
            self._write_stream(body, message, finish, usage)
        except (BrokenPipeError, ConnectionResetError):  # the client stopped reading (a cancelled call)
            self.server.aborted_streams += 1

    def _write_stream(self, body, message, finish, usage):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body.get("model")}

        def emit(delta, finish_reason=None, extra=None):
            chunk = dict(base, choices=[{"index": 0, "delta": delta, "finish_reason": finish_reason}])
            if extra:
                chunk.update(extra)
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            if self.server.chunk_delay:
                time.sleep(self.server.chunk_delay)

        if message.get("tool_calls"):
            tc = message["tool_calls"][0]
            emit({"role": "assistant", "tool_calls": [dict(tc, index=0)]})
        else:
            words = message["content"].split(" ")
            for i, w in enumerate(words):
                emit({"content": w + (" " if i < len(words) - 1 else "")})
        emit({}, finish)
        base_usage = dict(base, choices=[], usage=usage)
        self.wfile.write(f"data: {json.dumps(base_usage)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class OpenAIServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.fail_next = 0
        self.delay = 0.0
        self.chunk_delay = 0.0
        self.aborted_streams = 0  # streamed answers whose client hung up before the end
        self.script = None
        self.chat_calls = 0
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()
