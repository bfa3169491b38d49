"""Where webhooks may be sent: public addresses only, unless the operator allows others.

An owner chooses a webhook's URL, and the worker POSTs to it from inside the operator's
network. Unguarded, a URL naming 127.0.0.1, 10.0.0.0/8 or 169.254.169.254 (a cloud's
metadata service), or a name resolving to one, would make the worker a proxy into that
network. A URL naming such an address is refused when it is registered. A name is
checked when a delivery resolves it, on the very addresses the connection then uses, so
a name that resolves elsewhere later (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

import aiohttp
from aiohttp.abc import ResolveResult
from aiohttp.resolver import ThreadedResolver


def address_refusal(host: str | None) -> str | None:
    """Why a URL's host may not be a webhook's target: a literal address that is not
    public. None for a public address, and for a name (resolving it is the delivery's)."""
    try:
        address = ipaddress.ip_address((host or "").strip("[]"))
    except ValueError:
        return None
    return None if address.is_global else f"{host} is not a public address"


def _public(result: ResolveResult) -> bool:
    try:
        return ipaddress.ip_address(result["host"]).is_global
    except ValueError:  # a scoped (link-local) IPv6 address, "fe80::1%eth0"
        return False


class PublicResolver(ThreadedResolver):
    """The system's resolver, keeping only public addresses."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        public = [r for r in await super().resolve(host, port, family) if _public(r)]
        if not public:
            # With an errno, aiohttp's connection error keeps the reason in its message.
            raise OSError(errno.EHOSTUNREACH, f"{host} resolves to no public address")
        return public


def connector(private_targets: bool) -> aiohttp.TCPConnector:
    """A delivery's connections: to public addresses only, unless the operator allows
    private ones (`ACREAGE_WEBHOOK_PRIVATE_TARGETS`)."""
    return aiohttp.TCPConnector(resolver=None if private_targets else PublicResolver())
