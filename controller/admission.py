"""AdmissionReview (admission.k8s.io/v1) in, the webhook's answer out: pure, no sockets.

The rule is the loader's (``validate_change``): an edit is refused exactly when the controller's
last-good policy would reject it, with the parser's text ("parsing IPAddressPool 'lab':
spec.addresses[1]: ..."). DELETE is always allowed. Config objects outside the controller's
namespace are allowed with a warning: lbspeaker never reads them.

Invariants: any body gives an answer, never an exception: a body that is not an AdmissionReview
is HTTP 400 with a message; a review arriving before the config caches synced is HTTP 503, so
the API server applies the webhook's failurePolicy instead of us guessing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lbspeaker.core.loader import CONFIG_KINDS, RawConfig, validate_change

__all__ = ["API_VERSION", "MAX_BODY", "Reply", "review"]

API_VERSION = "admission.k8s.io/v1"
MAX_BODY = 4 * 1024 * 1024
"""Largest review accepted: an UPDATE carries object and oldObject, each up to etcd's 1.5 MiB."""
GROUP = "lbspeaker.io"


@dataclass(frozen=True)
class Reply:
    """What the HTTP layer sends: a status code and a JSON body (an AdmissionReview or an error)."""

    code: int
    body: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool | None:
        """The review's verdict (None when the reply is an HTTP error)."""
        resp = self.body.get("response")
        return bool(resp.get("allowed")) if isinstance(resp, Mapping) else None


def _bad(code: int, message: str) -> Reply:
    return Reply(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "message": message})


def _answer(uid: str, *, allowed: bool, message: str = "", warnings: tuple[str, ...] = ()) -> Reply:
    resp: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        resp["status"] = {"status": "Failure", "code": 422, "reason": "Invalid", "message": message}
    if warnings:
        resp["warnings"] = list(warnings)
    return Reply(200, {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": resp})


def _request(body: bytes) -> Mapping[str, Any] | str:
    """The review's request, or why the body is not a usable AdmissionReview."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        return f"body is not JSON: {err}"
    if not isinstance(doc, dict):
        return "body is not a JSON object"
    if doc.get("apiVersion") != API_VERSION or doc.get("kind") != "AdmissionReview":
        return (f"want apiVersion '{API_VERSION}' kind 'AdmissionReview', got "
                f"'{doc.get('apiVersion')}' '{doc.get('kind')}'")
    req = doc.get("request")
    if not isinstance(req, dict):
        return "request: missing or not an object"
    uid = req.get("uid")
    if not isinstance(uid, str) or not uid:
        return "request.uid: missing or not a string"
    if not isinstance(req.get("kind") or {}, dict):
        return "request.kind: not an object"
    return req


def review(
    body: bytes, *, config: Callable[[], RawConfig | None], namespace: str
) -> Reply:
    """Judge one AdmissionReview body against the live config config() returns (None: not synced)."""
    if len(body) > MAX_BODY:
        return _bad(413, f"reviewing admission request: body of {len(body)} bytes exceeds {MAX_BODY}")
    req = _request(body)
    if isinstance(req, str):
        return _bad(400, f"reviewing admission request: {req}")
    uid = str(req["uid"])
    gvk = req.get("kind") or {}
    kind, operation = str(gvk.get("kind") or ""), str(req.get("operation") or "")
    if gvk.get("group") != GROUP or kind not in CONFIG_KINDS or operation not in ("CREATE", "UPDATE"):
        return _answer(uid, allowed=True)  # DELETE, CONNECT, or not a config kind: nothing to judge
    obj = req.get("object")
    if not isinstance(obj, dict):
        return _bad(400, f"reviewing admission request '{uid}': request.object: missing or not an object")
    ns = str(req.get("namespace") or (obj.get("metadata") or {}).get("namespace") or "")
    if ns != namespace:
        name = str(req.get("name") or (obj.get("metadata") or {}).get("name") or "")
        return _answer(uid, allowed=True, warnings=(
            f"{kind} '{ns}/{name}' is ignored: lbspeaker reads config objects only from namespace '{namespace}'",))
    raw = config()
    if raw is None:
        return _bad(503, "reviewing admission request: the config caches have not synced yet")
    errors = validate_change(raw, obj, kind=kind, operation=operation)
    if errors:
        return _answer(uid, allowed=False, message="; ".join(str(e) for e in errors))
    return _answer(uid, allowed=True)
