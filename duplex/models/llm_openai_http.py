"""Chat LLM stage that streams from an OpenAI-compatible HTTP server (``/v1/chat/completions``).

For users who run a bigger model in a local server (llama.cpp ``llama-server``, vLLM, Ollama,
LM Studio, ...). Requests use ``stream: true`` and the answer arrives as server-sent events,
one ``data: {json}`` line per delta, ending with ``data: [DONE]``. Only the standard library
is used.
"""

from __future__ import annotations

import http.client
import json
import logging
import urllib.parse
from collections.abc import Iterator, Sequence

from duplex.errors import BackendError, ConfigError
from duplex.models.stages import ChatMessage

log = logging.getLogger(__name__)

# Rough English average for BPE vocabularies; good enough to budget a context.
CHARS_PER_TOKEN = 4


class OpenAIHttpGenerator:
    """A ``TextGenerator`` backed by an OpenAI-compatible chat completions endpoint."""

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

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int) -> Iterator[str]:
        """Yield the answer's text deltas as the server sends them.

        Closing the iterator closes the HTTP connection, which makes the server stop
        generating.

        Raises:
            BackendError: the server is unreachable, answers with an HTTP error, or sends a
                stream that is not OpenAI-style SSE.
        """
        body = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "max_tokens": max_tokens,
            "temperature": self.temperature,
            "stream": True,
        }
        return self._stream(json.dumps(body).encode("utf-8"))

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._host, self._port, timeout=self.timeout_s)

    def _stream(self, body: bytes) -> Iterator[str]:
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
            yield from self._read_events(response, url)
        finally:
            conn.close()

    def _read_events(self, response: http.client.HTTPResponse, url: str) -> Iterator[str]:
        """Parse SSE lines and yield each choice's ``delta.content``."""
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
                    yield from self._event("\n".join(data_lines), url)
                return
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if line == "":  # blank line ends an event
                if data_lines:
                    event = "\n".join(data_lines)
                    data_lines = []
                    if event.strip() == "[DONE]":
                        return
                    yield from self._event(event, url)
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
    def _event(data: str, url: str) -> Iterator[str]:
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
