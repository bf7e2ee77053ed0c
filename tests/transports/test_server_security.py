"""The server as a network would meet it: access (token in three forms, Origin, Host),
admission before cost, every connection limit, and bad input, on a real 127.0.0.1
socket with the scripted model."""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import os
import threading
import time

import numpy as np
import psutil
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from duplex.audio.frame import float_to_pcm16
from duplex.config import config_from_dict
from duplex.errors import ConfigError
from duplex.models.scripted import scripted_model
from duplex.runtime.runtime import Runtime
from duplex.transports.server import DuplexServer

from conftest import silence, tone

TOKEN = "s3cret-token"


def _server(token: str = "", server: dict | None = None, engine: dict | None = None, reply: str | None = None) -> DuplexServer:
    cfg = config_from_dict({"models": {"kind": "scripted"}, "server": server or {}, "engine": engine or {}})
    kwargs = {"reply": reply} if reply else {}
    runtime = Runtime(cfg, model=scripted_model(cfg, script=["What time is it?"], **kwargs), clock="realtime")
    return DuplexServer(runtime, "127.0.0.1", 0, token=token)


def _run(srv: DuplexServer, scenario) -> None:
    async def main():
        await srv.start()
        try:
            await scenario(srv.port)
        finally:
            await srv.stop()
            srv.runtime.close()

    asyncio.run(main())


async def _reply(ws, types=("error", "pong", "input.dropped"), timeout: float = 5.0) -> dict:
    """The next JSON message of one of ``types``, skipping engine events and audio."""
    async with asyncio.timeout(timeout):
        while True:
            msg = await ws.recv()
            if isinstance(msg, str) and json.loads(msg)["type"] in types:
                return json.loads(msg)


async def _refused_status(url: str, **kwargs) -> int:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url, **kwargs):
            pass
    return info.value.response.status_code


def _http(port: int, path: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    headers = dict(headers or {})
    conn.putrequest("GET", path, skip_host="Host" in headers)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    return resp


# ------------------------------------------------------------------ access
def test_a_token_is_accepted_as_bearer_query_or_subprotocol_and_required():
    async def scenario(port):
        url = f"ws://127.0.0.1:{port}"
        assert await _refused_status(f"{url}/ws") == 401
        assert await _refused_status(f"{url}/ws", additional_headers={"Authorization": "Bearer wrong"}) == 401
        assert await _refused_status(f"{url}/ws?token=wrong") == 401
        assert await _refused_status(f"{url}/v1/realtime", subprotocols=["realtime", "openai-insecure-api-key.wrong"]) == 401
        async with websockets.connect(f"{url}/ws", additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
        async with websockets.connect(f"{url}/ws?token={TOKEN}") as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
        async with websockets.connect(f"{url}/v1/realtime", subprotocols=["realtime", f"openai-insecure-api-key.{TOKEN}"]) as ws:
            assert ws.subprotocol == "realtime"  # the token is never echoed back
            assert json.loads(await ws.recv())["type"] == "session.created"

    _run(_server(TOKEN), scenario)


def test_the_openai_sdk_authenticates_with_its_api_key():
    from openai import AsyncOpenAI

    async def scenario(port):
        good = AsyncOpenAI(api_key=TOKEN, base_url=f"http://127.0.0.1:{port}/v1")
        async with good.realtime.connect(model="duplex") as conn:
            first = await asyncio.wait_for(conn.recv(), 5)
            assert first.type == "session.created"
        bad = AsyncOpenAI(api_key="not-the-token", base_url=f"http://127.0.0.1:{port}/v1")
        with pytest.raises(InvalidStatus) as info:
            async with bad.realtime.connect(model="duplex") as conn:
                await asyncio.wait_for(conn.recv(), 5)
        assert "401" in str(info.value)

    _run(_server(TOKEN), scenario)


def test_pages_from_other_origins_and_unknown_host_names_are_refused():
    async def scenario(port):
        url = f"ws://127.0.0.1:{port}/ws"
        assert await _refused_status(url, origin="http://evil.example") == 403
        assert await _refused_status(url, origin="null") == 403
        async with websockets.connect(url, origin=f"http://127.0.0.1:{port}") as ws:  # the page's own origin
            assert json.loads(await ws.recv())["type"] == "session.created"
        # DNS rebinding: a page on evil.example resolved to 127.0.0.1 sends its own Host.
        assert (await asyncio.to_thread(_http, port, "/healthz", {"Host": f"evil.example:{port}"})).status == 421
        assert (await asyncio.to_thread(_http, port, "/", {"Host": f"localhost:{port}"})).status == 200

    _run(_server(), scenario)


def test_an_allowed_origin_may_connect():
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", origin="https://app.example") as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"

    _run(_server(server={"allowed_origins": ["https://app.example"]}), scenario)


def test_a_non_loopback_address_without_a_token_refuses_to_start():
    cfg = config_from_dict({"models": {"kind": "scripted"}})
    with Runtime(cfg, model=scripted_model(cfg), clock="realtime") as runtime, pytest.raises(ConfigError, match="without a token"):
        DuplexServer(runtime, "0.0.0.0", 0)


def test_health_tells_the_session_count_only_to_an_authorized_caller_and_responses_are_hardened():
    async def scenario(port):
        anon = await asyncio.to_thread(_http, port, "/healthz")
        authed = await asyncio.to_thread(_http, port, "/healthz", {"Authorization": f"Bearer {TOKEN}"})
        page = await asyncio.to_thread(_http, port, "/")
        for bad in ("/" + "a" * 300, "/%00", "/..%2f..%2fetc%2fpasswd", "/../pyproject.toml", "/web/app.js/"):
            assert (await asyncio.to_thread(_http, port, bad)).status == 404, bad
        return anon, authed, page

    out = {}

    async def run(port):
        out["r"] = await scenario(port)

    srv = _server(TOKEN)
    _run(srv, run)
    anon, authed, page = out["r"]
    assert anon.status == 200
    assert authed.status == 200
    assert page.getheader("Server") == "duplex"
    assert page.getheader("X-Content-Type-Options") == "nosniff"
    assert "frame-ancestors 'none'" in page.getheader("Content-Security-Policy")


def test_health_body_hides_sessions_without_the_token():
    async def scenario(port):
        def get(headers):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz", headers=headers)
            return json.loads(conn.getresponse().read())

        async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}") as ws:
            await ws.recv()
            anon = await asyncio.to_thread(get, {})
            authed = await asyncio.to_thread(get, {"Authorization": f"Bearer {TOKEN}"})
        assert anon == {"ok": True, "auth": True}
        assert authed["sessions"] == 1

    _run(_server(TOKEN), scenario)


# ------------------------------------------------------------------ admission
def test_refused_connections_cost_nothing_and_leak_nothing():
    """max_sessions=2: two held, twenty refused; afterwards sessions, slots, threads and
    memory are back to the baseline."""
    proc = psutil.Process(os.getpid())

    async def scenario(port):
        url = f"ws://127.0.0.1:{port}/ws"
        baseline_threads = threading.active_count()
        baseline_rss = proc.memory_info().rss
        held = [await websockets.connect(url) for _ in range(2)]
        for ws in held:
            await ws.recv()
        codes = []
        for _ in range(20):
            async with websockets.connect(url) as ws:
                e = json.loads(await ws.recv())
                assert (e["type"], e["code"]) == ("error", "unavailable")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.recv()
                codes.append(info.value.rcvd.code)
        assert codes == [1013] * 20
        assert len(srv.runtime.sessions) == 2
        for ws in held:
            await ws.close()
        for _ in range(100):
            if not srv.runtime.sessions and srv.runtime.engine.free_slots() == 2:
                break
            await asyncio.sleep(0.05)
        assert not srv.runtime.sessions and srv.runtime.engine.free_slots() == 2
        await asyncio.sleep(0.3)
        assert threading.active_count() <= baseline_threads + 4  # the session pool's threads at most
        assert proc.memory_info().rss - baseline_rss < 30e6

    srv = _server(engine={"max_sessions": 2}, server={"max_connections_per_ip": 50, "max_connects_per_minute_per_ip": 100})
    _run(srv, scenario)


def test_a_refused_open_gives_back_its_engine_slot():
    cfg = config_from_dict({"models": {"kind": "scripted"}, "engine": {"max_sessions": 1}})
    with Runtime(cfg, model=scripted_model(cfg), clock="realtime") as runtime:
        s = runtime.open_session()
        from duplex.errors import EngineFull

        with pytest.raises(EngineFull):
            runtime.open_session()
        runtime.close_session(s)
        assert runtime.engine.free_slots() == 1
        runtime.close_session(runtime.open_session())


def test_connections_per_address_and_per_minute_are_bounded():
    async def scenario(port):
        url = f"ws://127.0.0.1:{port}/ws"
        held = [await websockets.connect(url) for _ in range(2)]
        assert await _refused_status(url) == 429
        for ws in held:
            await ws.close()
        await asyncio.sleep(0.2)
        # 4 connects a minute: the two above, the refused one, then one more.
        async with websockets.connect(url) as ws:
            await ws.recv()
        assert await _refused_status(url) == 429

    _run(_server(server={"max_connections_per_ip": 2, "max_connects_per_minute_per_ip": 4}), scenario)


def test_opening_sessions_does_not_block_health_checks():
    """Each session takes 0.5 s to build (a slow model): health answers meanwhile."""
    cfg = config_from_dict({"models": {"kind": "scripted"}})
    model = scripted_model(cfg)
    real_open = model.open_session

    def slow_open(*a, **k):
        time.sleep(0.5)
        return real_open(*a, **k)

    model.open_session = slow_open  # type: ignore[method-assign]
    srv = DuplexServer(Runtime(cfg, model=model, clock="realtime"), "127.0.0.1", 0)

    async def scenario(port):
        async def connect():
            return await websockets.connect(f"ws://127.0.0.1:{port}/ws")

        conns = [asyncio.create_task(connect()) for _ in range(4)]
        await asyncio.sleep(0.05)
        worst = 0.0
        for _ in range(10):
            t0 = time.perf_counter()
            assert (await asyncio.to_thread(_http, port, "/healthz")).status == 200
            worst = max(worst, time.perf_counter() - t0)
            await asyncio.sleep(0.05)
        for c in conns:
            await (await c).close()
        assert worst < 0.25, worst

    _run(srv, scenario)


# ------------------------------------------------------------------ limits
def test_an_oversized_message_closes_with_1009():
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.recv()
            await ws.send(b"\x00" * 5000)
            with pytest.raises(ConnectionClosed) as info:
                await _reply(ws)
            assert info.value.rcvd.code == 1009

    _run(_server(server={"max_message_bytes": 4096}), scenario)


def test_long_text_and_instructions_are_clipped_to_the_llm_context_with_an_error_event():
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "session.update", "instructions": "x" * 10_000}))
            e = await _reply(ws)
            assert e["code"] == "instructions_clipped" and "1024 of 10000" in e["message"]
            await ws.send(json.dumps({"type": "text", "text": "y" * 5000}))
            e = await _reply(ws)
            assert e["code"] == "text_clipped" and "512 of 5000" in e["message"]
            await ws.send(json.dumps({"type": "ping"}))
            assert (await _reply(ws))["type"] == "pong"

    srv = _server()
    srv.runtime.config.models.llm.n_ctx = 512  # instructions: half of it (~4 characters a token)
    _run(srv, scenario)


def test_audio_faster_than_real_time_is_dropped_and_reported():
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.recv()
            pcm = float_to_pcm16(silence(0.1))
            for _ in range(50):  # 5 s of audio at once; the bucket holds 1 s
                await ws.send(pcm)
            first = await _reply(ws, types=("input.dropped",))  # the first drop, at once
            await asyncio.sleep(1.1)
            await ws.send(pcm)  # later drops are summed, reported at most once a second
            second = await _reply(ws, types=("input.dropped",))
            assert first["reason"] == second["reason"] == "too_fast"
            assert 3500 <= first["dropped_ms"] + second["dropped_ms"] <= 4100, (first, second)
            await ws.send(json.dumps({"type": "ping"}))
            assert (await _reply(ws))["type"] == "pong"  # the session goes on

    _run(_server(server={"input_burst_ms": 1000}), scenario)


def test_realtime_audio_faster_than_real_time_is_dropped_and_reported():
    async def next_error(ws) -> dict:
        while (event := json.loads(await asyncio.wait_for(ws.recv(), 5)))["type"] != "error":
            pass
        return event

    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            chunk = base64.b64encode(float_to_pcm16(np.zeros(2400, np.float32))).decode()  # 100 ms at 24 kHz
            append = json.dumps({"type": "input_audio_buffer.append", "audio": chunk})
            for _ in range(50):  # 5 s of audio at once; the bucket holds 1 s
                await ws.send(append)
            first = await next_error(ws)  # the first drop, at once
            await asyncio.sleep(1.1)
            await ws.send(append)  # later drops are summed, reported at most once a second
            second = await next_error(ws)
            assert first["error"]["code"] == second["error"]["code"] == "input_audio_dropped"
            assert 3500 <= first["dropped_ms"] + second["dropped_ms"] <= 4100, (first, second)
            await ws.send(json.dumps({"type": "conversation.item.retrieve", "item_id": "nope"}))
            assert (await next_error(ws))["error"]["param"] == "item_id"  # the session goes on

    _run(_server(server={"input_burst_ms": 1000}), scenario)


def test_an_idle_client_is_closed_with_a_reason():
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:  # answers pings, sends nothing
            await ws.recv()
            e = await _reply(ws)
            assert e["code"] == "idle_timeout"
            with pytest.raises(ConnectionClosed) as info:
                await _reply(ws)
            assert info.value.rcvd.code == 1008

    _run(_server(server={"idle_timeout_s": 0.6}), scenario)


def test_a_session_ends_at_its_maximum_length():
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.recv()
            t0 = time.monotonic()
            with pytest.raises(ConnectionClosed) as info:
                while True:  # a lively client: it sends audio all the time
                    await ws.send(float_to_pcm16(silence(0.032)))
                    await asyncio.sleep(0.032)
            assert info.value.rcvd.code == 1008 and "max_session_s" in info.value.rcvd.reason
            assert 0.9 < time.monotonic() - t0 < 3

    _run(_server(server={"max_session_s": 1.0}), scenario)


def test_a_client_that_does_not_read_is_closed_and_the_server_stays_bounded():
    """The agent talks at 48 kB/s; the client never reads. The server's socket buffer
    fills, a send waits past send_timeout_s, and the session is closed."""

    async def scenario(port):
        ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws", max_queue=1)
        ws.transport.pause_reading()  # read nothing more at all
        t0 = time.monotonic()
        await ws.send(json.dumps({"type": "text", "text": "talk to me"}))
        for _ in range(400):
            if not srv.runtime.sessions:
                break
            await asyncio.sleep(0.1)
        assert not srv.runtime.sessions, "the slow reader's session was not closed"
        assert time.monotonic() - t0 < 40
        ws.transport.abort()

    long_reply = " ".join(["This is a long answer that goes on and on."] * 40)
    srv = _server(server={"send_timeout_s": 1.0, "send_buffer_bytes": 4096}, reply=long_reply)
    _run(srv, scenario)


# ------------------------------------------------------------------ bad input
BAD_TEXT = [
    ("not JSON", "{not json", "bad_message"),
    ("JSON array", "[1, 2]", "bad_message"),
    ("JSON string", '"hello"', "bad_message"),
    ("JSON null", "null", "bad_message"),
    ("no type", '{"text": "hi"}', "bad_message"),
    ("type is a number", '{"type": 5}', "unknown_type"),
    ("unknown type", '{"type": "rm -rf"}', "unknown_type"),
    ("deeply nested", "[" * 100_000 + "]" * 100_000, "bad_message"),
    ("nested in a field", '{"type": "text", "text": ' + "[" * 5000 + "]" * 5000 + "}", "bad_message"),
    ("rate as text", '{"type": "session.update", "input_sample_rate": "16000"}', "bad_rate"),
    ("odd rate", '{"type": "session.update", "input_sample_rate": 12345}', "bad_rate"),
    ("huge rate", '{"type": "session.update", "output_sample_rate": 1e400}', "bad_rate"),
    ("negative rate", '{"type": "session.update", "input_sample_rate": -16000}', "bad_rate"),
    ("instructions a number", '{"type": "session.update", "instructions": 5}', "bad_message"),
    ("instructions an object", '{"type": "session.update", "instructions": {"a": 1}}', "bad_message"),
    ("turn_detection text", '{"type": "session.update", "turn_detection": "yes"}', "bad_message"),
    ("text missing", '{"type": "text"}', "bad_message"),
    ("text blank", '{"type": "text", "text": "   "}', "bad_message"),
    ("text a list", '{"type": "text", "text": ["a"]}', "bad_message"),
    ("NUL after JSON", '{"type": "ping"}\x00', "bad_message"),
    ("lone surrogate", '{"type": "text", "text": "\\ud800"}', "bad_message"),
    ("duplicate keys", '{"type": "ping", "type": "nope"}', "unknown_type"),
    ("empty text frame", "", "bad_message"),
    ("giant number", '{"type": "session.update", "input_sample_rate": ' + "9" * 5000 + "}", "bad_message"),
    ("binary odd length", b"\x00\x01\x02", "bad_audio"),
]


@pytest.mark.parametrize(("name", "message", "code"), BAD_TEXT, ids=[b[0] for b in BAD_TEXT])
def test_a_bad_message_gets_an_error_naming_the_field_and_the_session_goes_on(name, message, code):
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None) as ws:
            await ws.recv()
            await ws.send(message)
            await ws.send(json.dumps({"type": "ping"}))
            first = await _reply(ws)
            if code is None:
                assert first["type"] == "pong"
            else:
                assert (first["type"], first["code"]) == ("error", code), first
                assert (await _reply(ws))["type"] == "pong"

    _run(_server(), scenario)


@pytest.mark.parametrize("query", ["input_sample_rate=abc", "input_sample_rate=99999999999", "output_sample_rate=-1", "rate=%00"])
def test_a_bad_url_parameter_is_an_error_and_a_1008_close_not_1011(query):
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws?{query}") as ws:
            e = json.loads(await ws.recv())
            assert (e["type"], e["code"]) == ("error", "bad_rate")
            with pytest.raises(ConnectionClosed) as info:
                await ws.recv()
            assert info.value.rcvd.code == 1008
        assert not srv.runtime.sessions

    srv = _server()
    _run(srv, scenario)


def test_realtime_clients_get_admission_and_limits_too():
    async def scenario(port):
        url = f"ws://127.0.0.1:{port}/v1/realtime"
        assert await _refused_status(url, origin="http://evil.example") == 403
        async with websockets.connect(url) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            audio = base64.b64encode(float_to_pcm16(tone(0.2))).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
            with pytest.raises(ConnectionClosed) as info:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            assert info.value.rcvd.code == 1008  # idle after its last message

    _run(_server(server={"idle_timeout_s": 0.8}), scenario)


def test_a_well_formed_session_still_talks():
    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}") as ws:
            await ws.recv()
            audio = np.concatenate([silence(0.3), tone(1.0), silence(3.0)])
            for i in range(0, len(audio), 512):
                await ws.send(float_to_pcm16(audio[i : i + 512]))
                await asyncio.sleep(512 / 16000)
            e = await _reply(ws, types=("agent.audio.started",), timeout=10)
            assert e["type"] == "agent.audio.started"

    _run(_server(TOKEN), scenario)


def test_with_a_certificate_and_key_the_server_speaks_tls(tmp_path):
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    cfg = config_from_dict({"models": {"kind": "scripted"}})
    srv = DuplexServer(Runtime(cfg, model=scripted_model(cfg), clock="realtime"), "127.0.0.1", 0, token=TOKEN, tls_cert=tmp_path / "cert.pem", tls_key=tmp_path / "key.pem")
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))

    async def scenario(port):
        async with websockets.connect(f"wss://localhost:{port}/ws?token={TOKEN}", ssl=client_ctx, origin=f"https://localhost:{port}") as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
        with pytest.raises((InvalidHandshake, OSError, TimeoutError)):  # plain WebSocket to a TLS port fails
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws?token={TOKEN}", open_timeout=3):
                pass

    _run(srv, scenario)


def test_audio_dropped_by_the_backlog_bound_is_reported():
    """The transport lets a 4 s burst through; the engine keeps at most 0.5 s of backlog."""

    async def scenario(port):
        async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
            await ws.recv()
            await ws.send(float_to_pcm16(silence(4.0)))
            e = await _reply(ws, types=("input.dropped",))
            assert e["reason"] == "backlog" and 2500 <= e["dropped_ms"] <= 3600, e

    _run(_server(server={"input_burst_ms": 5000}, engine={"max_input_backlog_ms": 500}), scenario)
