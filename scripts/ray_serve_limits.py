"""What Ray Serve does on its own, without duplex's choices (docs/deploy.md, "Capacity").

2 replicas of 1 session with Serve enforcing the limit (max_ongoing_requests =
max_sessions = 1, max_queued_requests = 1, the default router) and no proxy
middleware. It prints what clients 3 and 4 get when both replicas are full, and
what the two open sessions see when a replica is killed.

    PYTHONPATH=. .venv/bin/python scripts/ray_serve_limits.py

Measured (Ray 2.60): the third client's handshake never completes (queued; timed
out after 8 s), the fourth gets HTTP 500 during the handshake, and the killed
replica's client sees the connection drop without a close frame (1006).
"""

from __future__ import annotations

import asyncio
import os
import time

os.environ["RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH"] = ""  # no duplex middleware

import ray  # noqa: E402
import websockets  # noqa: E402
from ray import serve  # noqa: E402

from duplex.transports import ray_serve  # noqa: E402

PORT = 8124


async def probe(name: str) -> websockets.ClientConnection | None:
    t0 = time.monotonic()
    try:
        ws = await websockets.connect(f"ws://127.0.0.1:{PORT}/ws", open_timeout=8)
    except Exception as exc:  # what the handshake got, whatever it is
        print(f"{name}: handshake failed after {time.monotonic() - t0:.1f} s: {type(exc).__name__}: {exc}")
        return None
    try:
        msg = await asyncio.wait_for(ws.recv(), 8)
        print(f"{name}: after {time.monotonic() - t0:.1f} s: {str(msg)[:80]}")
    except TimeoutError:
        print(f"{name}: no message in 8 s")
    except websockets.ConnectionClosed as exc:
        print(f"{name}: closed: {exc}")
    return ws


async def clients() -> None:
    a, b = await probe("client 1"), await probe("client 2")
    third = asyncio.create_task(probe("client 3"))
    await asyncio.sleep(1.0)
    await probe("client 4")
    await third
    replicas = [r for r in ray.util.list_named_actors(all_namespaces=True) if r["name"].startswith("SERVE_REPLICA::duplex")]
    ray.kill(ray.get_actor(replicas[0]["name"], namespace=replicas[0]["namespace"]), no_restart=True)
    for name, ws in (("client 1", a), ("client 2", b)):
        assert ws is not None
        try:
            while True:
                await asyncio.wait_for(ws.recv(), 6)
        except TimeoutError:
            print(f"{name}: still open 6 s after the kill")
        except websockets.ConnectionClosed as exc:
            print(f"{name} after the kill: {exc}")


def main() -> None:
    config = ray_serve.replica_config("scripted", [], sessions_per_replica=1)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    serve.start(http_options={"host": "127.0.0.1", "port": PORT})
    deployment = serve.deployment(
        name=ray_serve.DEPLOYMENT_NAME, num_replicas=2, max_ongoing_requests=1, max_queued_requests=1,
        ray_actor_options={"num_cpus": 0.5},
    )(ray_serve.DuplexReplica)
    serve.run(deployment.bind(config), name=ray_serve.APP_NAME, route_prefix="/", blocking=False)
    while serve.status().applications[ray_serve.APP_NAME].status != "RUNNING":
        time.sleep(0.5)
    try:
        asyncio.run(clients())
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main()
