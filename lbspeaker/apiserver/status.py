"""Kubernetes ``Status`` bodies and the one exception type the API layers raise.

Every refusal of the embedded API server travels as an :class:`ApiStatusError` and leaves the
HTTP layer as a real ``meta/v1 Status`` (kind, apiVersion, status Failure, message, reason,
details, code), the shape the official client and kubectl decode.
"""

from __future__ import annotations

from typing import Any

JsonObj = dict[str, Any]

_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    413: "RequestEntityTooLarge",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiStatusError(Exception):
    """A request refused with an HTTP code and a Status body."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str = "",
        name: str = "",
        kind: str = "",
        group: str = "",
        causes: list[JsonObj] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.name = name
        self.kind = kind
        self.group = group
        self.causes = causes or []

    def body(self) -> JsonObj:
        """The Status object for this error."""
        return status_body(
            self.code,
            self.message,
            reason=self.reason,
            name=self.name,
            kind=self.kind,
            group=self.group,
            causes=self.causes,
        )


def status_body(
    code: int,
    message: str,
    *,
    reason: str = "",
    name: str = "",
    kind: str = "",
    group: str = "",
    causes: list[JsonObj] | None = None,
    success: bool = False,
) -> JsonObj:
    """Build a meta/v1 Status dict."""
    body: JsonObj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if success else "Failure",
    }
    if message:
        body["message"] = message
    if not success:
        body["reason"] = reason or _REASONS.get(code, "Unknown")
    details: JsonObj = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    if causes:
        details["causes"] = causes
    if details or success:
        body["details"] = details
    body["code"] = code
    return body


def not_found(plural: str, name: str, *, group: str = "") -> ApiStatusError:
    """404 for a missing object, worded like the real server."""
    res = f"{plural}.{group}" if group else plural
    return ApiStatusError(404, f'{res} "{name}" not found', name=name, kind=plural, group=group)


def already_exists(plural: str, name: str, *, group: str = "") -> ApiStatusError:
    """409 AlreadyExists on create."""
    res = f"{plural}.{group}" if group else plural
    return ApiStatusError(
        409, f'{res} "{name}" already exists', reason="AlreadyExists", name=name, kind=plural, group=group
    )


def conflict(plural: str, name: str, detail: str, *, group: str = "") -> ApiStatusError:
    """409 Conflict for a stale resourceVersion or a failed precondition."""
    res = f"{plural}.{group}" if group else plural
    return ApiStatusError(
        409, f'Operation cannot be fulfilled on {res} "{name}": {detail}', name=name, kind=plural, group=group
    )


def bad_request(message: str) -> ApiStatusError:
    """400 BadRequest."""
    return ApiStatusError(400, message)


class FieldError:
    """One field-level validation failure (a Status cause)."""

    __slots__ = ("detail", "field", "reason", "value")

    def __init__(self, field: str, reason: str, detail: str, value: Any = None) -> None:
        self.field = field
        self.reason = reason
        self.detail = detail
        self.value = value

    def text(self) -> str:
        """The human form, e.g. ``spec.ports[0].port: Invalid value: 0: must be between 1 and 65535``."""
        if self.reason == "FieldValueRequired":
            return f"{self.field}: Required value" + (f": {self.detail}" if self.detail else "")
        if self.reason == "FieldValueNotSupported":
            return f"{self.field}: Unsupported value: {_show(self.value)}: {self.detail}"
        if self.reason == "FieldValueForbidden":
            return f"{self.field}: Forbidden: {self.detail}"
        if self.reason == "FieldValueDuplicate":
            return f"{self.field}: Duplicate value: {_show(self.value)}"
        if self.reason == "FieldValueTypeInvalid":
            return f"{self.field}: Invalid value: {_show(self.value)}: {self.detail}"
        return f"{self.field}: Invalid value: {_show(self.value)}: {self.detail}"

    def cause(self) -> JsonObj:
        """The Status details.causes entry."""
        text = self.text()
        msg = text[len(self.field) + 2 :] if text.startswith(self.field + ": ") else text
        return {"reason": self.reason, "message": msg, "field": self.field}


def _show(value: Any) -> str:
    import json

    try:
        return json.dumps(value, separators=(",", ":"))
    except (TypeError, ValueError):
        return repr(value)


def invalid(kind: str, name: str, errors: list[FieldError], *, group: str = "") -> ApiStatusError:
    """422 Invalid carrying one cause per field error."""
    qual = f"{kind}.{group}" if group else kind
    texts = [e.text() for e in errors]
    joined = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    return ApiStatusError(
        422,
        f'{qual} "{name}" is invalid: {joined}',
        name=name,
        kind=kind,
        group=group,
        causes=[e.cause() for e in errors],
    )
