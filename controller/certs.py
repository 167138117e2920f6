"""The webhook's certificates: which names, when to rotate, how to make a new set.

The controller is its own CA, like MetalLB's cert-rotation: a fresh self-signed CA signs one
serving certificate for the webhook Service's DNS names; the CA's private key is thrown away
right after signing (a new rotation makes a new CA), so no stored key can mint other certs.

Invariants:
- The CA bundle the API server trusts holds the current CA first, then the previous one while it
  is still valid, so replicas still serving the previous certificate keep working until they
  load the new one.
- Rotation is due when less than 1/10 of the serving certificate's validity remains, when it is
  missing, unreadable, not for the wanted names, or not matching its key or the bundle.
Everything here is pure (no sockets, no clock reads): callers pass ``now``.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "CertSet",
    "Rotation",
    "ca_bundle",
    "dns_names",
    "generate",
    "rotation_due",
]

ROTATE_FRACTION = 10
"""Rotate when less than 1/ROTATE_FRACTION of the validity remains."""
MAX_BACKDATE = timedelta(minutes=5)
"""notBefore lies this far back (at most 1/10 of the validity) to tolerate clock skew."""


class Rotation(enum.Enum):
    """Why the serving certificate must be replaced (NOT_DUE: keep it)."""

    NOT_DUE = "not due"
    MISSING = "missing"
    UNREADABLE = "unreadable"
    NAMES_CHANGED = "dns names changed"
    KEY_MISMATCH = "key does not match the certificate"
    NOT_TRUSTED = "not signed by a CA of the bundle"
    NOT_YET_VALID = "not yet valid"
    EXPIRING = "less than 1/10 of its validity remains"


@dataclass(frozen=True)
class CertSet:
    """What the webhook Secret holds, as PEM bytes."""

    cert: bytes
    """The serving certificate (tls.crt)."""
    key: bytes
    """Its private key (tls.key)."""
    ca: bytes
    """The CA bundle the API server trusts (ca.crt); the current CA first."""


def dns_names(service: str, namespace: str) -> tuple[str, ...]:
    """The names the API server uses to reach the webhook Service."""
    base = f"{service}.{namespace}.svc"
    return (base, f"{base}.cluster.local")


def _general_name(name: str) -> x509.GeneralName:
    """An IP address SAN for an address literal (a webhook reached by url), else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _san(cert: x509.Certificate) -> frozenset[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return frozenset()
    ips = [str(ip) for ip in ext.value.get_values_for_type(x509.IPAddress)]
    return frozenset([*ext.value.get_values_for_type(x509.DNSName), *ips])


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    pub = ca.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey) or cert.signature_hash_algorithm is None:
        return False
    try:
        pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return cert.issuer == ca.subject


def _load_all(pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        return []


def rotation_due(cs: CertSet | None, *, names: Sequence[str], now: datetime) -> Rotation:
    """Whether (and why) the certificates of cs must be replaced at now."""
    if cs is None or not cs.cert or not cs.key:
        return Rotation.MISSING
    try:
        cert = x509.load_pem_x509_certificate(cs.cert)
        key = serialization.load_pem_private_key(cs.key, password=None)
    except ValueError:
        return Rotation.UNREADABLE
    cas = _load_all(cs.ca)
    if not cas:
        return Rotation.UNREADABLE
    if _san(cert) != frozenset(str(_general_name(n).value) for n in names):
        return Rotation.NAMES_CHANGED
    if key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
        return Rotation.KEY_MISMATCH
    if not any(_signed_by(cert, ca) for ca in cas):
        return Rotation.NOT_TRUSTED
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        return Rotation.NOT_YET_VALID
    if end - now < (end - start) / ROTATE_FRACTION:
        return Rotation.EXPIRING
    return Rotation.NOT_DUE


def ca_bundle(new_ca: bytes, previous: bytes, *, now: datetime) -> bytes:
    """new_ca, then the first certificate of the previous bundle if it is another, still valid one."""
    fresh = _load_all(new_ca)
    old = _load_all(previous)[:1]
    keep = [c for c in old if c not in fresh and c.not_valid_after_utc > now]
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (*fresh, *keep))


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def generate(names: Sequence[str], *, now: datetime, validity: timedelta, previous_ca: bytes = b"") -> CertSet:
    """A new CA and a serving certificate for names, valid for validity from now (P-256 keys)."""
    if not names:
        raise ValueError("generating webhook certificate: no dns names")
    start = now - min(MAX_BACKDATE, validity / ROTATE_FRACTION)
    end = now + validity
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"lbspeaker-webhook-ca@{int(now.timestamp())}")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False, data_encipherment=False,
                                     key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    return CertSet(cert=cert.public_bytes(serialization.Encoding.PEM), key=_pem_key(key),
                   ca=ca_bundle(ca_pem, previous_ca, now=now))
