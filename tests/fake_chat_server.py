"""A small OpenAI-compatible chat server on 127.0.0.1 for the function-calling tests.

It streams like ``/v1/chat/completions`` does (server-sent events). Its rules, fixed:
offered tools and a last message that asks about the weather (from the user, or as a
system item: pipecat sends typed text so) → a call to
the first tool, with
``{"city": "Paris"}`` as arguments sent in two fragments; a last message from a tool →
"It is <the tool's output> in Paris."; anything else → a one-sentence answer naming the
system prompt's first word ("Told <word> here, ..."; 14 words, long enough to interrupt),
so a test can tell which instructions it was given.
Every request body is kept in ``requests``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from duplex.transports.server import BackgroundServer


class FakeChatServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in server.answer(body):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.wfile.write(b"data: [DONE]\n\n")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @staticmethod
    def answer(body: dict[str, Any]) -> list[dict[str, Any]]:
        messages = body["messages"]
        last = messages[-1]
        if body.get("tools") and last["role"] in ("user", "system") and "weather" in str(last["content"]).lower():
            name = body["tools"][0]["function"]["name"]
            first = {"index": 0, "id": "call_fake1", "type": "function", "function": {"name": name, "arguments": '{"city": '}}
            rest = {"index": 0, "function": {"arguments": '"Paris"}'}}
            return [
                {"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [first]}}]},
                {"choices": [{"index": 0, "delta": {"tool_calls": [rest]}}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
            ]
        if last["role"] == "tool":
            text = f"It is {last['content']} in Paris."
        else:
            first_word = (messages[0]["content"].split() or ["nothing"])[0] if messages[0]["role"] == "system" else "none"
            text = f"Told {first_word.strip('.,!').lower()} here, and a few more words follow to make it last."
        words = text.split()
        return [{"choices": [{"index": 0, "delta": {"content": (" " if i else "") + w}}]} for i, w in enumerate(words)]

    def __enter__(self) -> FakeChatServer:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def scripted_server_over_chat() -> Iterator[tuple[BackgroundServer, FakeChatServer]]:
    """A real-time ``duplex serve`` on 127.0.0.1 whose scripted session hears "What time
    is it?" and whose LLM is a ``FakeChatServer`` reached through ``llm_openai_http``."""
    from duplex.config import config_from_dict
    from duplex.models.llm_openai_http import OpenAIHttpGenerator
    from duplex.models.scripted import scripted_model
    from duplex.runtime.runtime import Runtime
    from duplex.transports.server import BackgroundServer

    with FakeChatServer() as chat:
        # No server-side echo canceller: the client plays the answers, not the server, and
        # speex, adapted to one pure tone, mutes the next tone it hears (not speech).
        cfg = config_from_dict({"models": {"kind": "scripted"}, "echo": {"engine": "none"}})
        model = scripted_model(cfg, script=["What time is it?"])
        model.stages.llm = lambda: OpenAIHttpGenerator(chat.base_url, model="fake", temperature=0.0)
        runtime = Runtime(cfg, model=model, clock="realtime")
        try:
            with BackgroundServer(runtime) as server:
                yield server, chat
        finally:
            runtime.close()
