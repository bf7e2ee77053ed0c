"""Malformed OpenAI Realtime client events: each gets an ``error`` event naming the field,
and the session goes on (never a close 1011). A table of bad inputs on a real server, and
a bounded hypothesis fuzz of the parser and of the connection that applies its events."""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import pytest
import websockets
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from duplex.config import config_from_dict
from duplex.models.scripted import scripted_model
from duplex.runtime.runtime import Runtime
from duplex.transports import realtime_schema as rs
from duplex.transports.openai_realtime import RealtimeConnection
from duplex.transports.server import BackgroundServer

# (message, the error code, the field named). Shapes from issue 21 first.
BAD = [
    ('{"type":"input_audio_buffer.append","audio":123}', "invalid_value", "audio"),
    ('{"type":"input_audio_buffer.append","audio":null}', "invalid_value", "audio"),
    ('{"type":"input_audio_buffer.append"}', "missing_required_parameter", "audio"),
    ('{"type":"input_audio_buffer.append","audio":"not base64!"}', "invalid_value", "audio"),
    ('{"type":"input_audio_buffer.append","audio":"AAAA"}', "invalid_value", "audio"),  # 3 bytes: odd length
    ('{"type":"session.update","session":"x"}', "invalid_value", "session"),
    ('{"type":"session.update"}', "missing_required_parameter", "session"),
    ('{"type":"session.update","session":{"audio":5}}', "invalid_value", "session.audio"),
    ('{"type":"session.update","session":{"audio":{"input":[]}}}', "invalid_value", "session.audio.input"),
    ('{"type":"session.update","session":{"audio":{"input":{"format":{"type":"audio/pcm","rate":16000}}}}}', "invalid_value", "session.audio.input.format"),
    ('{"type":"session.update","session":{"audio":{"input":{"turn_detection":"on"}}}}', "invalid_value", "session.audio.input.turn_detection"),
    ('{"type":"session.update","session":{"instructions":42}}', "invalid_value", "session.instructions"),
    ('{"type":"session.update","session":{"tools":{}}}', "invalid_value", "session.tools"),
    ('{"type":"session.update","session":{"tools":[{"type":"function"}]}}', "missing_required_parameter", "session.tools[0].name"),
    ('{"type":"session.update","session":{"tool_choice":"maybe"}}', "invalid_value", "session.tool_choice"),
    ('{"type":"session.update","session":{"output_modalities":["video"]}}', "invalid_value", "session.output_modalities[0]"),
    ('{"type":"conversation.item.create","item":"x"}', "invalid_value", "item"),
    ('{"type":"conversation.item.create"}', "missing_required_parameter", "item"),
    ('{"type":"conversation.item.create","item":{"type":"picture"}}', "invalid_value", "item"),
    ('{"type":"conversation.item.create","item":{"type":"message","role":"user","content":5}}', "invalid_value", "item.content"),
    ('{"type":"conversation.item.create","item":{"type":"message","role":"user","content":[{"type":"input_text","text":5}]}}', "invalid_value", "item.content[0].text"),
    ('{"type":"conversation.item.create","item":{"type":"message","role":"robot","content":[]}}', "invalid_value", "item.role"),
    ('{"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"c"}}', "missing_required_parameter", "item.output"),
    ('{"type":"conversation.item.create","previous_item_id":"nope","item":{"type":"message","role":"user","content":[]}}', "item_create_invalid_previous_item_id", "previous_item_id"),
    ('{"type":"conversation.item.truncate","item_id":"a","audio_end_ms":NaN}', "invalid_value", "audio_end_ms"),
    ('{"type":"conversation.item.truncate","item_id":"a","audio_end_ms":Infinity}', "invalid_value", "audio_end_ms"),
    ('{"type":"conversation.item.truncate","item_id":"a","audio_end_ms":"abc"}', "invalid_value", "audio_end_ms"),
    ('{"type":"conversation.item.truncate","item_id":"a","audio_end_ms":-5}', "invalid_value", "audio_end_ms"),
    ('{"type":"conversation.item.truncate","item_id":"nope","audio_end_ms":5}', "item_truncate_invalid_item_id", "item_id"),
    ('{"type":"conversation.item.delete","item_id":7}', "invalid_value", "item_id"),
    ('{"type":"conversation.item.delete","item_id":"nope"}', "item_delete_invalid_item_id", "item_id"),
    ('{"type":"conversation.item.retrieve","item_id":"nope"}', "item_retrieve_invalid_item_id", "item_id"),
    ('{"type":"response.create","response":"now"}', "invalid_value", "response"),
    ('{"type":"response.create","response":{"instructions":["a"]}}', "invalid_value", "response.instructions"),
    ('{"type":"response.create","response":{"metadata":"x"}}', "invalid_value", "response.metadata"),
    ('{"type":"no.such.event"}', "unknown_event", "type"),
    ('{"type":5}', "missing_required_parameter", "type"),
    ('{"audio":"AAAA"}', "missing_required_parameter", "type"),
    ("[1, 2, 3]", "invalid_json", None),
    ("not json at all", "invalid_json", None),
    ("[" * 100_000 + "]" * 100_000, "invalid_json", None),
    ('{"type":' * 5000 + "1" + "}" * 5000, "invalid_json", None),
]


@pytest.fixture(scope="module")
def runtime():
    cfg = config_from_dict({"models": {"kind": "scripted"}})
    rt = Runtime(cfg, model=scripted_model(cfg), clock="realtime")
    yield rt
    rt.close()


def test_each_bad_input_gets_an_error_naming_its_field_and_the_session_goes_on(runtime):
    async def main() -> list[tuple[str, dict[str, Any]]]:
        got = []
        with BackgroundServer(runtime) as server:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/realtime", max_size=2**24) as ws:
                assert json.loads(await ws.recv())["type"] == "session.created"
                for message, _, _ in BAD:
                    await ws.send(message)
                    async with asyncio.timeout(5):
                        event = json.loads(await ws.recv())
                    got.append((message, event))
                await ws.send(json.dumps({"type": "session.update", "session": {"instructions": "Still here."}}))
                async with asyncio.timeout(5):
                    updated = json.loads(await ws.recv())
                assert updated["type"] == "session.updated" and updated["session"]["instructions"] == "Still here."
        return got

    for (message, code, param), (_, event) in zip(BAD, asyncio.run(main()), strict=True):
        assert event["type"] == "error", (message[:80], event)
        assert event["error"]["code"] == code, (message[:80], event["error"])
        assert event["error"]["param"] == param, (message[:80], event["error"])
        assert event["error"]["message"]


# ---------------------------------------------------------------- the fuzz
TEMPLATES: list[dict[str, Any]] = [
    {"type": "session.update", "session": {"type": "realtime", "instructions": "Hi.", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": {"type": "server_vad"}}}, "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}], "tool_choice": "auto"}},
    {"type": "session.update", "session": {"turn_detection": None, "modalities": ["text"]}},
    {"type": "input_audio_buffer.append", "audio": "AAAAAA=="},
    {"type": "input_audio_buffer.commit"},
    {"type": "input_audio_buffer.clear"},
    {"type": "conversation.item.create", "previous_item_id": "root", "item": {"id": "i1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello"}, {"type": "input_image", "image_url": "data:,"}]}},
    {"type": "conversation.item.create", "item": {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}},
    {"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "c1", "output": "ok"}},
    {"type": "conversation.item.retrieve", "item_id": "i1"},
    {"type": "conversation.item.delete", "item_id": "i1"},
    {"type": "conversation.item.truncate", "item_id": "i1", "content_index": 0, "audio_end_ms": 10},
    {"type": "response.create", "response": {"instructions": "Say hi.", "metadata": {"k": "v"}, "tool_choice": {"type": "function", "name": "f"}, "conversation": "none"}},
    {"type": "response.cancel", "response_id": "r"},
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _slots(value: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON value."""
    out: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append((value, k))
            out.extend(_slots(v))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.append((value, i))
            out.extend(_slots(v))
    return out


@st.composite
def mutated_events(draw: st.DrawFn) -> str:
    event = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    for _ in range(draw(st.integers(0, 3))):  # 0: the valid event itself
        slots = _slots(event)
        if not slots:
            break
        container, key = draw(st.sampled_from(slots))
        if draw(st.booleans()) or isinstance(container, list):
            container[key] = draw(json_values)
        else:
            del container[key]
    return json.dumps(event)


messages = mutated_events() | st.text(max_size=40) | json_values.map(json.dumps)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages)
def test_fuzz_the_parser_only_returns_events_or_names_the_fault(message):
    try:
        event = rs.parse_client_event(message)
    except rs.ClientEventError as exc:
        assert exc.code and exc.message
        return
    assert isinstance(event, rs.ClientEvent) and event.type in rs.EVENTS


class FakeWs:
    """Collects what a connection sends (the fuzz drives ``on_message`` directly)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def test_fuzz_the_connection_never_fails_on_what_the_parser_lets_through(runtime):
    ws = FakeWs()
    conn = RealtimeConnection(ws, runtime, {}, beta=False)  # type: ignore[arg-type]
    session = runtime.open_session()
    conn.session = session
    loop = asyncio.new_event_loop()
    seen: set[str] = set()

    # derandomize: the same 300 messages every run, so the coverage check below cannot
    # pass or fail by the draw (it failed about one run in three with a random seed). A
    # response stays active (nothing ticks the session here), so only the first valid
    # response.create can be created: it is given as an example, the fuzz comes after it.
    @settings(
        max_examples=300,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(messages)
    @example('{"type": "response.create"}')
    def check(message: str) -> None:
        ws.sent.clear()
        loop.run_until_complete(conn.on_message(session, message))
        internal = [e for e in ws.sent if e["type"] == "error" and e["error"]["code"] == "internal_error"]
        assert not internal, (message, internal)
        seen.update(e["type"] for e in ws.sent)

    try:
        check()
        # The fuzz reached past the parser: accepted events were applied.
        assert {"error", "session.updated", "conversation.item.added", "response.created"} <= seen, seen
    finally:
        loop.close()
        runtime.close_session(session, "test over")
