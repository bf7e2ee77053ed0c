"""OpenAIHttpGenerator against a real local HTTP server speaking OpenAI-style SSE."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from duplex.errors import BackendError
from duplex.models.llm_openai_http import OpenAIHttpGenerator
from duplex.models.stages import ChatMessage, TextGenerator

WORDS = ["Paris", " is", " the", " capital", " of", " France", "."]


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.server.requests.append(json.loads(self.rfile.read(length)))
        self.server.auth.append(self.headers.get("Authorization"))
        mode = self.server.mode
        if mode == "http500":
            body = b'{"error": {"message": "model exploded"}}'
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        if mode == "malformed":
            self.wfile.write(b"data: {not json\n\n")
            return
        words = WORDS if mode == "ok" else [f" w{i}" for i in range(1000)]
        self.wfile.write(b": keep-alive\n\n")
        first = {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        self.wfile.write(f"data: {json.dumps(first)}\n\n".encode())
        try:
            for i, word in enumerate(words):
                chunk = {"choices": [{"index": 0, "delta": {"content": word}}]}
                self.wfile.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                self.wfile.flush()
                self.server.sent = i + 1
                if mode == "slow":
                    time.sleep(0.01)
            done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            self.server.disconnected.set()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.mode = "ok"
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.sent = 0
        self.disconnected = threading.Event()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _generator(srv: _Server, **kwargs: object) -> OpenAIHttpGenerator:
    port = srv.server_address[1]
    return OpenAIHttpGenerator(f"http://127.0.0.1:{port}/v1", "test-model", timeout_s=5, **kwargs)  # type: ignore[arg-type]


QUESTION = [ChatMessage("system", "Be brief."), ChatMessage("user", "Capital of France?")]


def test_satisfies_text_generator_protocol(server: _Server) -> None:
    assert isinstance(_generator(server), TextGenerator)


def test_streams_deltas_in_order_and_sends_openai_request(server: _Server) -> None:
    pieces = list(_generator(server, api_key="sk-test").stream(QUESTION, max_tokens=32))
    assert pieces == WORDS
    request = server.requests[0]
    assert request["stream"] is True
    assert request["model"] == "test-model"
    assert request["max_tokens"] == 32
    assert request["messages"][1] == {"role": "user", "content": "Capital of France?"}
    assert server.auth[0] == "Bearer sk-test"


def test_closing_the_stream_disconnects_from_the_server(server: _Server) -> None:
    server.mode = "slow"
    stream = _generator(server).stream(QUESTION, max_tokens=1000)
    assert next(stream) == " w0"
    stream.close()
    assert server.disconnected.wait(5.0), "server kept streaming after the client closed"
    assert server.sent < 1000


def test_connection_refused_raises_backend_error_naming_the_url() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = OpenAIHttpGenerator(f"http://127.0.0.1:{port}/v1", "m", timeout_s=2)
    with pytest.raises(BackendError, match=r"connection refused.*127\.0\.0\.1"):
        list(gen.stream(QUESTION, max_tokens=8))


def test_http_500_raises_backend_error_with_status_and_body(server: _Server) -> None:
    server.mode = "http500"
    with pytest.raises(BackendError, match=r"HTTP 500.*model exploded"):
        list(_generator(server).stream(QUESTION, max_tokens=8))


def test_malformed_sse_raises_backend_error(server: _Server) -> None:
    server.mode = "malformed"
    with pytest.raises(BackendError, match="not JSON"):
        list(_generator(server).stream(QUESTION, max_tokens=8))


def test_count_tokens_estimates_four_chars_per_token() -> None:
    gen = OpenAIHttpGenerator("http://127.0.0.1:1/v1", "m")
    assert gen.count_tokens("") == 0
    assert gen.count_tokens("abcdefgh") == 2
