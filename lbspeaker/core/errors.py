"""The one error hierarchy of lbspeaker.

Expected outcomes (not elected, pool exhausted, ...) are return values elsewhere; these are
faults. Messages follow "what failed: context: cause", with user values quoted and the object
key (``ns/name`` or the cluster-scoped name) always present.
"""

from __future__ import annotations


class LbError(Exception):
    """Base of every lbspeaker fault."""


class ConfigError(LbError):
    """A configuration object is invalid; names the object and the field path."""

    def __init__(self, kind: str, name: str, field: str, cause: str) -> None:
        self.kind = kind
        self.name = name
        self.field = field
        self.cause = cause
        super().__init__(f"parsing {kind} '{name}': {field}: {cause}")


class ConfigErrors(LbError):
    """Several configuration errors found in one pass."""

    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class ApiError(LbError):
    """The Kubernetes API answered with an error Status or could not be reached."""

    def __init__(self, message: str, *, code: int = 0, reason: str = "") -> None:
        self.code = code
        self.reason = reason
        super().__init__(message)


class ConflictError(ApiError):
    """A write was refused because the object changed meanwhile (HTTP 409)."""


class NotFoundError(ApiError):
    """The object does not exist (HTTP 404)."""


class GoneError(ApiError):
    """The watch resourceVersion is too old (HTTP 410): relist."""


class NetworkError(LbError):
    """A socket, link or netlink operation failed."""


class LabError(LbError):
    """Building or tearing down the lab failed."""
