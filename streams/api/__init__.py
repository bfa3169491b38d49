"""The REST API of SPEC §6, served by every worker from the state its agents write."""

from streams.api.core import Api, register

__all__ = ["Api", "register"]
