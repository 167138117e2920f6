"""Keeps the webhook's certificate in its Secret fresh and its CA in the webhook configuration.

Every controller replica runs one rotator (the Service sends reviews to any ready replica, leader
or not). One round (``sync``):
1. read the Secret; if rotation is due (``certs.rotation_due``), make a new set, put its CA
   bundle (new CA + previous CA) into the ValidatingWebhookConfiguration first, then write the
   Secret guarded by its resourceVersion (create when missing). A replica that loses the race
   (409) takes the winner's Secret instead;
2. make every webhook's ``clientConfig.caBundle`` equal the Secret's ``ca.crt`` when it differs
   (a re-applied manifest, a lost race);
3. hand the Secret's certificate and key to the server, which reloads them when they changed.
Rounds repeat every ``check_interval`` seconds and sooner after a failure.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.certs import CertSet, Rotation, dns_names, generate, rotation_due
from lbspeaker.core.errors import ApiError, ConflictError, NotFoundError
from lbspeaker.k8s.client import SECRETS, VALIDATING_WEBHOOK_CONFIGURATIONS, Kube

log = logging.getLogger(__name__)

SECRET = "lbspeaker-webhook-cert"
CONFIGURATION = "lbspeaker-validating-webhook-configuration"
SERVICE = "lbspeaker-webhook-service"
_KEYS = {"cert": "tls.crt", "key": "tls.key", "ca": "ca.crt"}


@dataclass(frozen=True)
class CertSettings:
    """Where the certificate lives and how long it is valid."""

    namespace: str = "lbspeaker-system"
    """Namespace of the Secret (the controller's)."""
    secret: str = SECRET
    """Name of the Secret holding tls.crt, tls.key and ca.crt."""
    configuration: str = CONFIGURATION
    """The ValidatingWebhookConfiguration whose caBundle is kept in sync ('' to leave it alone)."""
    names: tuple[str, ...] = field(default_factory=lambda: dns_names(SERVICE, "lbspeaker-system"))
    """DNS names (or IP literals) of the serving certificate."""
    validity: timedelta = timedelta(days=365)
    """How long a new certificate is valid; it is replaced when less than 1/10 remains."""
    check_interval: float = 60.0
    """Seconds between two rounds."""


def _decode(secret: dict[str, Any] | None) -> CertSet | None:
    data = (secret or {}).get("data") or {}
    if not isinstance(data, dict) or not data:
        return None
    try:
        parts = {f: base64.b64decode(str(data.get(k) or ""), validate=True) for f, k in _KEYS.items()}
    except (binascii.Error, ValueError):
        return CertSet(b"", b"", b"")  # unreadable: rotation_due says MISSING, the Secret is rewritten
    return CertSet(**parts)


def _encode(cs: CertSet) -> dict[str, str]:
    return {k: base64.b64encode(getattr(cs, f)).decode() for f, k in _KEYS.items()}


class CertRotator:
    """Runs rotation rounds in a background thread; ``on_cert`` receives (cert, key) PEM."""

    def __init__(self, kube: Kube, settings: CertSettings, *, on_cert: Callable[[bytes, bytes], object]) -> None:
        self.kube = kube
        self.settings = settings
        self.on_cert = on_cert
        self.rotations = 0
        self.bundle_patches = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._missing_logged = False

    # -- one round ------------------------------------------------------------------------

    def sync(self) -> CertSet:
        """One round; returns the certificate set in force. Raises ApiError."""
        s = self.settings
        secret = self._get_secret()
        cs = _decode(secret)
        reason = rotation_due(cs, names=s.names, now=datetime.now(UTC))
        if reason is not Rotation.NOT_DUE:
            cs = self._rotate(secret, cs, reason)
        assert cs is not None
        self.sync_bundle(cs.ca)
        self.on_cert(cs.cert, cs.key)
        return cs

    def _get_secret(self) -> dict[str, Any] | None:
        try:
            return self.kube.get(SECRETS, self.settings.secret, self.settings.namespace)
        except NotFoundError:
            return None

    def _rotate(self, secret: dict[str, Any] | None, cs: CertSet | None, reason: Rotation) -> CertSet:
        s = self.settings
        new = generate(s.names, now=datetime.now(UTC), validity=s.validity, previous_ca=cs.ca if cs else b"")
        self.sync_bundle(new.ca)  # trust the new CA before anyone serves its certificate
        body: dict[str, Any] = {
            "metadata": {"name": s.secret, "namespace": s.namespace,
                         "labels": {"app.kubernetes.io/name": "lbspeaker", "app.kubernetes.io/component": "webhook"}},
            "type": "kubernetes.io/tls",
            "data": _encode(new),
        }
        try:
            if secret is None:
                self.kube.create(SECRETS, body, s.namespace)
            else:
                body["metadata"] = dict(secret.get("metadata") or {})
                self.kube.replace(SECRETS, s.secret, {**secret, **body}, s.namespace)
        except ConflictError:
            won = _decode(self._get_secret())
            log.info("webhook_cert_rotation_lost_race secret=%s/%s action=use_theirs", s.namespace, s.secret)
            if won is None:
                raise ApiError(f"rotating webhook certificate: Secret '{s.namespace}/{s.secret}' vanished") from None
            return won
        self.rotations += 1
        log.info("webhook_cert_rotated secret=%s/%s reason=%s valid_for=%s names=%s",
                 s.namespace, s.secret, reason.value, s.validity, ",".join(s.names))
        return new

    def sync_bundle(self, ca: bytes) -> bool:
        """Set every webhook's caBundle of the configuration to ca; True if it was patched."""
        name = self.settings.configuration
        if not name:
            return False
        want = base64.b64encode(ca).decode()
        try:
            vwc = self.kube.get(VALIDATING_WEBHOOK_CONFIGURATIONS, name)
        except NotFoundError:
            if not self._missing_logged:
                log.warning("webhook_configuration_missing name=%s action=retry", name)
                self._missing_logged = True
            return False
        self._missing_logged = False
        hooks = vwc.get("webhooks") or []
        stale = [h for h in hooks if (h.get("clientConfig") or {}).get("caBundle") != want]
        if not stale:
            return False
        for h in stale:
            h.setdefault("clientConfig", {})["caBundle"] = want
        self.kube.replace(VALIDATING_WEBHOOK_CONFIGURATIONS, name, vwc)  # guarded by its resourceVersion
        self.bundle_patches += 1
        log.info("webhook_ca_bundle_patched configuration=%s webhooks=%d", name, len(stale))
        return True

    # -- the loop -------------------------------------------------------------------------

    def start(self) -> None:
        """Run rounds in a background thread until stop()."""
        self._thread = threading.Thread(target=self._run, name="webhook-certs", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current round."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)

    def _run(self) -> None:
        interval = self.settings.check_interval
        backoff = min(1.0, interval)
        while not self._stop.is_set():
            try:
                self.sync()
                wait, backoff = interval, min(1.0, interval)
            except (ApiError, ValueError, OSError) as err:  # OSError: the server refused the cert
                log.warning("webhook_cert_sync_failed err=%s retry_in=%.1fs", err, backoff)
                wait, backoff = backoff, min(backoff * 2, interval)
            self._stop.wait(wait)
