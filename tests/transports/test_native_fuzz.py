"""Fuzzing the native protocol's parser (hypothesis, bounded): whatever a client sends,
the parser returns a typed message or an error naming the field, and a real server
answers every message without closing the session."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from duplex.config import config_from_dict
from duplex.models.scripted import scripted_model
from duplex.runtime.runtime import Runtime
from duplex.transports.native_schema import MESSAGE_TYPES, BadMessage, parse_message, parse_query
from duplex.transports.server import BackgroundServer

CODES = {"bad_message", "unknown_type", "bad_rate"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)
FIELDS = ["input_sample_rate", "output_sample_rate", "instructions", "turn_detection", "text", "type"]
# Messages that look like ours (a known type, known field names, any values) and anything else.
near_messages = st.builds(
    lambda kind, fields: json.dumps({"type": kind, **fields}),
    st.sampled_from([*MESSAGE_TYPES, "nope", ""]) | st.text(max_size=10),
    st.dictionaries(st.sampled_from(FIELDS[:-1]), json_values, max_size=4),
)
any_text = st.one_of(near_messages, json_values.map(json.dumps), st.text(max_size=200))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(any_text)
def test_the_parser_never_raises_and_names_what_is_wrong(text):
    msg = parse_message(text)
    if isinstance(msg, BadMessage):
        assert msg.code in CODES and msg.message
    else:
        assert msg.type in MESSAGE_TYPES


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_the_parser_takes_any_bytes(data):
    msg = parse_message(data)
    assert isinstance(msg, BadMessage) or msg.type in MESSAGE_TYPES


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["input_sample_rate", "output_sample_rate", "rate", "token", "x"]), st.text(max_size=12)))
def test_url_parameters_never_raise(params):
    q = parse_query(params)
    assert isinstance(q, BadMessage) and q.code == "bad_rate" or q.input_sample_rate in (None, 8000, 16000, 22050, 24000, 32000, 44100, 48000)


@pytest.fixture(scope="module")
def live_server():
    cfg = config_from_dict({"models": {"kind": "scripted"}, "server": {"max_connects_per_minute_per_ip": 1000}})
    runtime = Runtime(cfg, model=scripted_model(cfg), clock="realtime")
    with BackgroundServer(runtime) as server:
        yield server
    runtime.close()


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(any_text | st.binary(max_size=64), min_size=1, max_size=12))
def test_a_real_server_answers_every_fuzzed_message_and_keeps_the_session(live_server, messages):
    async def main():
        async with websockets.connect(f"ws://127.0.0.1:{live_server.port}/ws") as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            for m in messages:
                await ws.send(m)
            await ws.send(json.dumps({"type": "ping"}))
            async with asyncio.timeout(10):
                while True:  # a closed session would raise ConnectionClosed here
                    reply = await ws.recv()
                    if isinstance(reply, str) and json.loads(reply)["type"] == "pong":
                        return

    asyncio.run(main())
