"""Who may talk to the server: token, Origin and Host checks (docs/serving.md).

A token is accepted in three forms, so every kind of client can send it:

- ``Authorization: Bearer <token>`` (the official ``openai`` SDK sends its api_key so);
- ``?token=<token>`` in the URL (browsers cannot set headers on a WebSocket);
- the WebSocket subprotocol ``openai-insecure-api-key.<token>`` (OpenAI's browser form).

Tokens are compared in constant time. Origin: a browser page may open a WebSocket
only from the server's own origin or an allowed one (a page elsewhere could otherwise
drive the agent). Host: on loopback, only loopback names are answered, so a DNS
rebinding page cannot reach the server under a name of its own.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from websockets.datastructures import Headers

from duplex.errors import ConfigError

log = logging.getLogger(__name__)

SUBPROTOCOL_TOKEN_PREFIX = "openai-insecure-api-key."
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_loopback(host: str) -> bool:
    """True for an address or name that only this machine can reach."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def offered_subprotocols(headers: Headers) -> list[str]:
    """The subprotocols a client offers, in order."""
    return [p.strip() for value in headers.get_all("Sec-WebSocket-Protocol") for p in value.split(",") if p.strip()]


def presented_token(headers: Headers, query: str) -> str | None:
    """The token a request carries, in any of the three forms, or None."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    for key, value in parse_qsl(query):
        if key == "token":
            return value
    for proto in offered_subprotocols(headers):
        if proto.startswith(SUBPROTOCOL_TOKEN_PREFIX):
            return proto[len(SUBPROTOCOL_TOKEN_PREFIX) :]
    return None


@dataclass(frozen=True)
class Refusal:
    """Why a request is refused: an HTTP status and a message that says what to do."""

    status: int
    message: str


@dataclass(frozen=True)
class AccessPolicy:
    """The server's access rules.

    Args:
        token: the shared secret; empty means none (allowed on loopback only).
        bind_host: the address the server listens on.
        allowed_origins: browser origins allowed besides the server's own.
        allowed_hosts: Host names answered; empty: see ``ServerConfig.allowed_hosts``.
        tls: whether the server speaks TLS (its own origin is then https).
    """

    token: str
    bind_host: str
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    tls: bool = False

    def __post_init__(self) -> None:
        if not self.token and not is_loopback(self.bind_host):
            raise ConfigError(
                f"refusing to serve on {self.bind_host} without a token: anyone who can reach it "
                "could use the agent. Set one (--token-file PATH, or the DUPLEX_TOKEN "
                "environment variable), or listen on 127.0.0.1"
            )

    def authorized(self, headers: Headers, query: str) -> bool:
        """True when no token is configured or the request carries the right one."""
        if not self.token:
            return True
        given = presented_token(headers, query)
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_allowed(self, headers: Headers) -> bool:
        try:
            name = urlsplit(f"//{headers.get('Host', '')}").hostname or ""
        except ValueError:  # a malformed Host ("[::1")
            return False
        if self.allowed_hosts:
            return name in self.allowed_hosts or "*" in self.allowed_hosts
        if is_loopback(self.bind_host):
            return is_loopback(name) or name == self.bind_host
        return True  # a token guards a server bound elsewhere; any name reaches it

    def origin_allowed(self, headers: Headers) -> bool:
        origin = headers.get("Origin")
        if origin is None:
            return True  # not a browser: a page cannot open a WebSocket without Origin
        if origin in self.allowed_origins or "*" in self.allowed_origins:
            return True
        scheme = "https" if self.tls else "http"
        return origin.lower() == f"{scheme}://{headers.get('Host', '').lower()}"

    def check_http(self, headers: Headers) -> Refusal | None:
        """Checks for any request (page, health): the Host name."""
        if not self.host_allowed(headers):
            return Refusal(421, "this server does not answer to that Host name; see server.allowed_hosts\n")
        return None

    def check_websocket(self, headers: Headers, query: str) -> Refusal | None:
        """Checks for a WebSocket upgrade: Host, Origin, token."""
        refusal = self.check_http(headers)
        if refusal is not None:
            return refusal
        if not self.origin_allowed(headers):
            return Refusal(403, "pages from this origin may not connect; see server.allowed_origins\n")
        if not self.authorized(headers, query):
            return Refusal(
                401,
                "a token is required: Authorization: Bearer <token>, ?token=<token>, or the "
                "subprotocol openai-insecure-api-key.<token>\n",
            )
        return None
