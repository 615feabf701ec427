"""The ``medtalk serve`` HTTP and WebSocket API (FastAPI) and its Live Link Face output.

Nothing here is imported by ``medtalk --help``: the command imports ``medtalk.server.app`` when it runs.
This module stays free of FastAPI, so the command can check its options before the extra is needed.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the API beyond this machine without a token (one line, exit 2 from the CLI)."""
    from medtalk.core.errors import ConfigError

    if not is_loopback(host) and not token:
        raise ConfigError(
            f"binding to {host} exposes the API beyond this machine: pass --token TOKEN "
            "(clients send 'Authorization: Bearer TOKEN'), or bind to 127.0.0.1"
        )
