"""Who may talk to a kavi server, and who they are.

- Bound to loopback (the default), a request must name a loopback Host (a DNS-rebinding page names its own
  host) and a mutating request must come from no browser page or a same-origin one: ``Sec-Fetch-Site`` other
  than same-origin/none, or an ``Origin`` that is not the Host, is refused. A page on another origin cannot
  POST to a local kavi, even with a "simple" request that skips the CORS preflight; no CORS header is sent.
- Bound anywhere else, a token is required to start, and every request but the health check must carry it
  as ``Authorization: Bearer``.
- The identity an approval records: the token's configured identity, or the local user on loopback.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from kavi.errors import UsageError
from kavi.server.problems import PROBLEM_MEDIA_TYPE, problem

TOKEN_ENV = "KAVI_SERVE_TOKEN"  # noqa: S105 (the variable's name, not a token)
IDENTITY_ENV = "KAVI_SERVE_IDENTITY"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
OPEN_PATHS = frozenset({"/api/v1/health"})
LOOPBACK_NAMES = frozenset({"localhost"})

Scope = dict[str, Any]


@dataclass(frozen=True)
class Access:
    """The server's access settings, checked once at start."""

    host: str
    token: str | None
    token_identity: str
    local_identity: str

    @classmethod
    def resolve(cls, host: str, token: str | None, identity: str | None, local_identity: str) -> Access:
        token = token or os.environ.get(TOKEN_ENV) or None
        if not is_loopback(host) and not token:
            raise UsageError(
                f"refusing to bind {host}: a server reachable from other machines needs a token",
                hint=f"pass --token or set {TOKEN_ENV}, or bind 127.0.0.1",
            )
        return cls(host, token, identity or os.environ.get(IDENTITY_ENV) or "token", local_identity)

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _host_name(host_header: str) -> str:
    return urlsplit(f"//{host_header}").hostname or ""


class AccessMiddleware:
    """ASGI middleware in front of the API and the MCP endpoint; it puts the caller's identity in the scope."""

    def __init__(self, app: Any, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.check(scope)
        if refusal is not None:
            status, title, detail = refusal
            await _send_problem(send, status, title, detail)
            return
        await self.app(scope, receive, send)

    def check(self, scope: Scope) -> tuple[int, str, str] | None:
        """None when the request may proceed (``scope["kavi.identity"]`` then names the caller)."""
        host = _header(scope, b"host") or ""
        if self.access.loopback and not is_loopback(_host_name(host)):
            return 421, "Misdirected", f"this server answers only to a loopback Host, not {host!r}"
        path, method = scope.get("path", ""), scope.get("method", "GET")
        if self.access.token is not None:
            if path in OPEN_PATHS:
                return None
            given = _header(scope, b"authorization") or ""
            scheme, _, credential = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(credential.strip(), self.access.token):
                return 401, "Unauthorized", "this server needs `Authorization: Bearer <token>`"
            scope["kavi.identity"] = self.access.token_identity
            return None
        if method not in SAFE_METHODS:
            why = cross_origin(scope, host)
            if why is not None:
                return 403, "Forbidden", f"cross-origin request refused: {why}"
        scope["kavi.identity"] = self.access.local_identity
        return None


def cross_origin(scope: Scope, host: str) -> str | None:
    """Why a mutating request looks like it comes from a page on another origin, or None."""
    site = _header(scope, b"sec-fetch-site")
    if site is not None and site.lower() not in ("same-origin", "none"):
        return f"Sec-Fetch-Site is {site}"
    origin = _header(scope, b"origin")
    if origin is not None:
        parts = urlsplit(origin)
        if origin == "null" or parts.netloc.lower() != host.lower():
            return f"Origin {origin} is not this server ({host})"
    return None


async def _send_problem(send: Any, status: int, title: str, detail: str) -> None:
    body = json.dumps(problem(status, title, detail, error_type=title)).encode()
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="kavi"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
