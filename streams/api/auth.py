"""Bearer keys: the admin key from settings, owner keys that name their owner.

An owner key is `acr_<base64url(apiOwner)>.<secret>`. Naming the owner lets any worker
route the request to the worker holding that owner's partition, where the key's sha256 is
checked against the state table; the secret never leaves the response that created it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from streams.api.errors import ApiError

PREFIX = "acr_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the admin (owner None) or one API owner, and the key's fingerprint."""

    owner: str | None
    fingerprint: str

    @property
    def is_admin(self) -> bool:
        return self.owner is None


def fingerprint(token: str) -> str:
    """sha256 hex: what is stored and what rate limits are counted under."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_owner_key(api_owner: str) -> str:
    encoded = base64.urlsafe_b64encode(api_owner.encode()).decode().rstrip("=")
    return f"{PREFIX}{encoded}.{secrets.token_urlsafe(32)}"


def owner_of(token: str) -> str | None:
    """The owner a well-formed owner key names; None for anything else."""
    if not token.startswith(PREFIX) or "." not in token:
        return None
    encoded = token[len(PREFIX):].rsplit(".", 1)[0]
    try:
        owner = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return owner or None


def unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


def identify(headers: Mapping[str, str], admin_key: str) -> Principal:
    """Who the key claims to be; an owner key is only trusted once `verify` found its hash."""
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("missing bearer key")
    if admin_key and hmac.compare_digest(token.encode(), admin_key.encode()):
        return Principal(None, fingerprint(token))
    owner = owner_of(token)
    if owner is None:
        raise unauthorized("invalid key")
    return Principal(owner, fingerprint(token))
