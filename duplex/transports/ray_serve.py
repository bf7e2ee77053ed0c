"""``duplex serve --replicas N``: the runtime on Ray Serve, one engine per replica.

Each replica of the ``duplex`` deployment is one engine process: it builds one
``Runtime`` from the profile and serves the same paths as ``duplex serve``
(``/`` page, ``/ws`` native, ``/v1/realtime`` OpenAI subset, ``/healthz``)
through the plain server's own per-request code (``DuplexServer``), reached
through ``duplex.transports.asgi`` (and its WebSocket adapter, ``asgi_socket``). A
WebSocket stays on the replica that accepted it for its whole life.

Capacity lives in the engine: a replica takes ``engine.max_sessions`` sessions.
Serve lets it hold one request more (``max_ongoing_requests = max_sessions + 1``)
and routes each new connection to the least loaded replica
(``LeastLoadedRouter``), so a client meets a full replica only when every replica
is full; that replica then answers exactly as ``duplex serve`` does (the
``error`` event, close 1013). Leaving admission to Serve's own limit would not:
its proxy queues a connection while every replica is at ``max_ongoing_requests``
(``max_queued_requests`` cannot be 0), and answers the handshake of the next one
with a bare HTTP 503.

A replica that dies ends only its own sessions; the proxy closes them with 1012
("service restart": reconnect), see ``duplex.transports.ray_proxy``, and Serve
starts a new replica. See docs/deploy.md.
"""

# No ``from __future__ import annotations``: FastAPI reads the route parameters' types at run time.
import dataclasses
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, WebSocket
from fastapi.responses import Response
from ray import serve
from ray.serve import Application, Deployment
from ray.serve.request_router import FIFOMixin, PendingRequest, RequestRouter, RunningReplica
from starlette.requests import Request as HttpRequest

from duplex.config import Config, load_config
from duplex.runtime.runtime import Runtime
from duplex.transports.asgi import handle_http, handle_websocket
from duplex.transports.ray_proxy import PROXY_CALLBACK, PROXY_CALLBACK_ENV
from duplex.transports.server import DuplexServer

log = logging.getLogger(__name__)

APP_NAME = "duplex"
DEPLOYMENT_NAME = "duplex"


@dataclass(frozen=True)
class RayServeOptions:
    """How the deployment is placed and scaled.

    Args:
        replicas: a fixed number of replicas (None with ``max_replicas``: autoscaling).
        min_replicas / max_replicas: autoscaling bounds; scaling follows open sessions.
        cpus_per_replica / gpus_per_replica: Ray resources each replica reserves
            (a codec-LM replica: ``gpus_per_replica=1``, one per GPU).
        host / port: where Serve's HTTP proxy listens (every node runs one).
        address: an existing Ray cluster (``ray start --head`` prints it); None starts one here.
        num_cpus: CPUs of the local cluster this process starts (None: all).
    """

    replicas: int | None = 1
    min_replicas: int | None = None
    max_replicas: int | None = None
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    host: str = "127.0.0.1"
    port: int = 8000
    address: str | None = None
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if self.max_replicas is None and (self.replicas is None or self.replicas < 1):
            raise ValueError("--replicas must be at least 1 (or give --max-replicas to autoscale)")
        if self.max_replicas is not None and self.max_replicas < max(1, self.min_replicas or 0):
            raise ValueError("--max-replicas must be at least 1 and at least --min-replicas")


class LeastLoadedRouter(FIFOMixin, RequestRouter):
    """Offers every replica and lets Serve take the one with the fewest ongoing requests.

    Serve's default (power of two choices) samples two replicas: with ``max_sessions + 1``
    requests allowed per replica it could send a client to a full replica while a third
    one has room. Here a client reaches a full replica only when all are full.
    """

    def initialize_state(self, **kwargs: Any) -> None:
        # Ask every replica for its count at each connection instead of trusting the
        # router's cache: an entry expires after 10 s and Serve then prefers any replica
        # still cached, full or not. A probe costs one RPC per replica per new session.
        if hasattr(self, "_use_replica_queue_len_cache"):
            self._use_replica_queue_len_cache = False

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        return [candidate_replicas] if candidate_replicas else []


api = FastAPI(title="duplex", docs_url=None, redoc_url=None, openapi_url=None)


@serve.ingress(api)
class DuplexReplica:
    """One engine process: a ``Runtime`` and the plain server's request handling around it."""

    def __init__(self, config: Config, host: str = "127.0.0.1", token: str | None = None) -> None:
        # ``token`` None: the replica's own ``server.token_env`` variable (a Serve config
        # file's deployment, e.g. a KubeRay secret in the environment).
        if token is None:
            token = os.environ.get(config.server.token_env, "")
        self.runtime = Runtime(config, clock="realtime")
        # Never started: its per-request code (paths, pages, health, access, admission,
        # protocols, bounds, the "engine is full" answer) serves this ingress, so there is
        # one implementation. ``host`` is where Serve's proxy listens: the access rules
        # depend on it.
        self.server = DuplexServer(self.runtime, host=host, token=token, config=config.server)
        log.info("replica ready (pid %d): %s, %d sessions", os.getpid(), config.name, config.engine.max_sessions)

    @api.websocket("/{path:path}")
    async def websocket(self, websocket: WebSocket, path: str) -> None:
        await handle_websocket(self.server, websocket)

    @api.get("/{path:path}")
    async def page(self, request: HttpRequest, path: str) -> Response:
        return await handle_http(self.server, request)

    def check_health(self) -> None:
        """Serve's periodic health check: a replica whose engine clock died is restarted."""
        thread = self.runtime.engine._thread
        if thread is not None and not thread.is_alive():
            raise RuntimeError("the engine clock thread died; Serve restarts this replica")

    def __del__(self) -> None:
        runtime = getattr(self, "runtime", None)
        if runtime is not None:
            runtime.close()


def replica_config(config_name: str | None, overrides: list[str] | None, sessions_per_replica: int | None) -> Config:
    """The profile each replica runs, read once here (the edge) and shipped to the replicas."""
    extra = [f"engine.max_sessions={sessions_per_replica}"] if sessions_per_replica else []
    return load_config(config_name, list(overrides or []) + extra)


def deployment_of(config: Config, options: RayServeOptions) -> Deployment:
    """The ``duplex`` deployment: capacity from the engine, placement and scaling from ``options``."""
    capacity = config.engine.max_sessions
    scaling: dict[str, Any]
    if options.max_replicas is not None:
        scaling = {
            "autoscaling_config": {
                "min_replicas": options.min_replicas or 1,
                "max_replicas": options.max_replicas,
                "initial_replicas": max(options.min_replicas or 1, options.replicas or 1),
                # Sessions are long: scale up when replicas run about three-quarters full.
                "target_ongoing_requests": max(1.0, 0.75 * capacity),
            }
        }
    else:
        scaling = {"num_replicas": options.replicas}
    deployment = serve.deployment(
        name=DEPLOYMENT_NAME,
        # One more than the engine holds: that request is told "busy" by the engine itself.
        max_ongoing_requests=capacity + 1,
        ray_actor_options={"num_cpus": options.cpus_per_replica, "num_gpus": options.gpus_per_replica},
        request_router_config={"request_router_class": LeastLoadedRouter},
        health_check_period_s=5,
        **scaling,
    )(DuplexReplica)
    return deployment


def build_app(config: Config, options: RayServeOptions, token: str | None = None) -> Application:
    """The Serve application: the ``duplex`` deployment bound to ``config`` and ``token``
    (None: each replica reads ``config.server.token_env`` from its environment)."""
    return deployment_of(config, options).bind(config, options.host, token)


def app_builder(args: dict[str, Any]) -> Application:
    """The application from a Serve config file (KubeRay ``serveConfigV2``, ``serve deploy``); see ``app_args``."""
    return build_app(*app_args(args))


def app_args(args: dict[str, Any]) -> tuple[Config, RayServeOptions]:
    """The profile and options a Serve config file's ``args`` name (KubeRay ``serveConfigV2``, ``serve deploy``).

    ``import_path: duplex.transports.ray_serve:app_builder`` with ``args``: ``config``
    (profile name or path), ``set`` (a list of ``KEY=VALUE`` overrides),
    ``sessions_per_replica``, ``replicas`` or ``min_replicas`` / ``max_replicas``,
    ``cpus_per_replica``, ``gpus_per_replica``, ``host`` (as the file's ``http_options``:
    the replicas' access rules follow it): the options of ``duplex serve --replicas``.
    The token is each replica's ``server.token_env`` variable (``DUPLEX_TOKEN``).
    Keep ``max_ongoing_requests`` out of the file's ``deployments`` section: it follows
    the engine's sessions here.
    """
    known = {"config", "set", "sessions_per_replica", "replicas", "min_replicas", "max_replicas", "cpus_per_replica", "gpus_per_replica", "host"}
    unknown = set(args) - known
    if unknown:
        raise ValueError(f"unknown duplex application args {sorted(unknown)}; known: {sorted(known)}")
    overrides = args.get("set") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ValueError("args.set must be a list of 'key=value' strings, e.g. ['engine.max_sessions=16']")
    sessions = args.get("sessions_per_replica")
    config = replica_config(args.get("config"), overrides, int(sessions) if sessions is not None else None)
    options = options_from(**{k: args.get(k) for k in known - {"config", "set", "sessions_per_replica"}})
    return config, options


def start(config: Config, options: RayServeOptions, wait_s: float = 300.0, token: str = "") -> None:
    """Join (or start) a Ray cluster, start Serve's proxy and deploy the application
    (``token``: what clients must present, as ``DuplexServer``'s; see ``build_app``).

    Raises:
        RuntimeError: the deployment did not become healthy in ``wait_s``.
    """
    import ray

    os.environ.setdefault(PROXY_CALLBACK_ENV, PROXY_CALLBACK)  # inherited by a cluster started here
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.WARNING}
        if options.address is None and options.num_cpus is not None:
            kwargs["num_cpus"] = options.num_cpus
        ray.init(address=options.address, **kwargs)
    serve.start(http_options={"host": options.host, "port": options.port})
    serve.run(build_app(config, options, token), name=APP_NAME, route_prefix="/", blocking=False)
    deadline = time.monotonic() + wait_s
    while serve.status().applications[APP_NAME].status != "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the duplex application did not become healthy in {wait_s:.0f} s: {serve.status()}")
        time.sleep(0.5)


def running_replicas() -> int:
    """How many replicas of the deployment run now."""
    app = serve.status().applications.get(APP_NAME)
    if app is None:
        return 0
    counts = app.deployments[DEPLOYMENT_NAME].replica_states
    return sum(n for state, n in counts.items() if state == "RUNNING")


def stop() -> None:
    """Tear the application and Serve down (the Ray cluster is left as it was)."""
    serve.shutdown()


def options_from(**fields: Any) -> RayServeOptions:
    """``RayServeOptions`` from CLI values (None means the default)."""
    known = {f.name for f in dataclasses.fields(RayServeOptions)}
    return RayServeOptions(**{k: v for k, v in fields.items() if k in known and v is not None})
