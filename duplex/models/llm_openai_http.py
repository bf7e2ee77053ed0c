"""Chat LLM stage that streams from an OpenAI-compatible HTTP server (``/v1/chat/completions``).

For users who run a bigger model in a local server (llama.cpp ``llama-server``, vLLM, Ollama,
LM Studio, ...). Requests use ``stream: true`` and the answer arrives as server-sent events,
one ``data: {json}`` line per delta, ending with ``data: [DONE]``. Only the standard library
is used.

Function calling: ``tools`` and ``tool_choice`` are forwarded as the chat API has them; the
``delta.tool_calls`` fragments the server streams are put together and yielded as whole
``ToolCall`` items once the stream ends (text pieces are yielded as they come).
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from duplex.errors import BackendError, ConfigError
from duplex.models.stages import ChatMessage, Tool, ToolCall, ToolChoice

log = logging.getLogger(__name__)

# Rough English average for BPE vocabularies; good enough to budget a context.
CHARS_PER_TOKEN = 4


def _message_json(m: ChatMessage) -> dict[str, object]:
    """One message as the chat completions API takes it."""
    out: dict[str, object] = {"role": m.role, "content": m.content}
    if m.tool_calls:
        out["content"] = m.content or None
        out["tool_calls"] = [
            {"id": c.call_id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in m.tool_calls
        ]
    if m.role == "tool":
        out["tool_call_id"] = m.tool_call_id
    return out


def _tools_json(tools: Sequence[Tool], tool_choice: ToolChoice) -> dict[str, object]:
    """The request's ``tools`` and ``tool_choice`` fields."""
    specs = [
        {
            "type": "function",
            "function": {
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters or {"type": "object", "properties": {}},
            },
        }
        for t in tools
    ]
    choice: object = tool_choice
    if tool_choice not in ("auto", "none", "required"):
        choice = {"type": "function", "function": {"name": tool_choice}}
    return {"tools": specs, "tool_choice": choice}


@dataclass
class _CallParts:
    """A tool call's fragments as they stream in (``delta.tool_calls[i]``)."""

    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class OpenAIHttpGenerator:
    """A ``TextGenerator`` backed by an OpenAI-compatible chat completions endpoint."""

    supports_tools = True
    prefill = None  # the server keeps its own cache: nothing to warm from here
    last_end_probability: float | None = None  # the API gives no P(end)

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080/v1",
        model: str = "default",
        *,
        api_key: str | None = None,
        timeout_s: float = 30.0,
        temperature: float = 0.7,
    ) -> None:
        """Configure the endpoint (nothing is sent until ``stream``).

        Args:
            base_url: the server's API root, e.g. ``http://127.0.0.1:8080/v1``;
                ``/chat/completions`` is appended.
            model: the model name the server expects.
            api_key: sent as ``Authorization: Bearer``; ``None`` sends none.
            timeout_s: connect and per-read timeout.
            temperature: sampling temperature.

        Raises:
            ConfigError: ``base_url`` is not an http(s) URL.
        """
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(
                f"models.llm.base_url must be an http(s) URL like http://127.0.0.1:8080/v1, "
                f"got {base_url!r}"
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.temperature = temperature
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._path = parsed.path.rstrip("/") + "/chat/completions"

    def count_tokens(self, text: str) -> int:
        """Estimated tokens of ``text`` (about four characters a token)."""
        return max(1, -(-len(text) // CHARS_PER_TOKEN)) if text else 0

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        tools: Sequence[Tool] = (),
        tool_choice: ToolChoice = "auto",
    ) -> Iterator[str | ToolCall]:
        """Yield the answer's text deltas as the server sends them, then its tool calls.

        Closing the iterator closes the HTTP connection, which makes the server stop
        generating.

        Raises:
            BackendError: the server is unreachable, answers with an HTTP error, or sends a
                stream that is not OpenAI-style SSE.
        """
        body: dict[str, object] = {
            "model": self.model,
            "messages": [_message_json(m) for m in messages],
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": True,
        }
        if tools:
            body.update(_tools_json(tools, tool_choice))
        return self._stream(json.dumps(body).encode("utf-8"))

    def close(self) -> None:
        """Nothing to free: each answer opens and closes its own connection."""

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout_s)

    def _stream(self, body: bytes) -> Iterator[str | ToolCall]:
        url = f"{self.base_url}/chat/completions"
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream",
        }
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        conn = self._connection()
        try:
            try:
                conn.request("POST", self._path, body=body, headers=headers)
                response = conn.getresponse()
            except ConnectionRefusedError as exc:
                raise BackendError(
                    f"connection refused by {url}; is the model server running? "
                    "Start it or set models.llm.base_url"
                ) from exc
            except TimeoutError as exc:
                raise BackendError(
                    f"no answer from {url} within {self.timeout_s} s; raise models.llm.timeout_s "
                    "or check the server"
                ) from exc
            except OSError as exc:
                raise BackendError(f"cannot reach {url}: {exc}") from exc
            if response.status != 200:
                detail = response.read(2000).decode("utf-8", errors="replace").strip()
                raise BackendError(
                    f"{url} answered HTTP {response.status} {response.reason}: {detail[:500]}"
                )
            calls: dict[int, _CallParts] = {}
            yield from self._read_events(response, url, calls)
            for i in sorted(calls):
                parts = calls[i]
                if not parts.name:
                    raise BackendError(f"{url} streamed a tool call without a function name")
                yield ToolCall(parts.call_id or f"call_{i}", parts.name, "".join(parts.arguments) or "{}")
        finally:
            conn.close()

    def _read_events(
        self, response: http.client.HTTPResponse, url: str, calls: dict[int, _CallParts]
    ) -> Iterator[str]:
        """Parse SSE lines and yield each choice's ``delta.content``; tool call fragments
        go into ``calls`` by their index."""
        data_lines: list[str] = []
        while True:
            try:
                raw = response.readline()
            except TimeoutError as exc:
                raise BackendError(
                    f"{url} stopped sending for {self.timeout_s} s mid-answer"
                ) from exc
            except OSError as exc:
                raise BackendError(f"stream from {url} broke: {exc}") from exc
            if not raw:  # connection closed without [DONE]
                if data_lines:
                    yield from self._event("\n".join(data_lines), url, calls)
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line == "":  # blank line ends an event
                if data_lines:
                    event = "\n".join(data_lines)
                    data_lines = []
                    if event.strip() == "[DONE]":
                        return
                    yield from self._event(event, url, calls)
                continue
            if line.startswith(":"):  # SSE comment / keep-alive
                continue
            field, _, value = line.partition(":")
            if field == "data":
                data_lines.append(value[1:] if value.startswith(" ") else value)
            elif field not in ("event", "id", "retry"):
                raise BackendError(
                    f"{url} sent a line that is not server-sent events: {line[:200]!r}; "
                    "is base_url an OpenAI-compatible /v1 endpoint?"
                )

    @staticmethod
    def _event(data: str, url: str, calls: dict[int, _CallParts]) -> Iterator[str]:
        try:
            payload = json.loads(data)
        except json.JSONDecodeError as exc:
            raise BackendError(f"{url} sent an event that is not JSON: {data[:200]!r}") from exc
        if not isinstance(payload, dict):
            raise BackendError(f"{url} sent an unexpected event: {data[:200]!r}")
        if "error" in payload:
            raise BackendError(f"{url} reported an error mid-stream: {payload['error']}")
        choices = payload.get("choices")
        if not isinstance(choices, list):
            raise BackendError(f"{url} sent an event without choices: {data[:200]!r}")
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            content = delta.get("content") if isinstance(delta, dict) else None
            if content:
                yield str(content)
            fragments = delta.get("tool_calls") if isinstance(delta, dict) else None
            for frag in fragments if isinstance(fragments, list) else []:
                if not isinstance(frag, dict):
                    continue
                index = frag.get("index", 0)
                parts = calls.setdefault(index if isinstance(index, int) else 0, _CallParts())
                parts.call_id = parts.call_id or str(frag.get("id") or "")
                fn = frag.get("function")
                if not isinstance(fn, dict):
                    fn = {}
                parts.name = parts.name or str(fn.get("name") or "")
                if isinstance(fn.get("arguments"), str):
                    parts.arguments.append(fn["arguments"])
