"""Webhook certificate decisions: names, when rotation is due, the CA bundle across a rotation."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from controller.certs import CertSet, Rotation, ca_bundle, dns_names, generate, rotation_due

NAMES = dns_names("lbspeaker-webhook-service", "lbspeaker-system")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def cs() -> CertSet:
    return generate(NAMES, now=T0, validity=100 * DAY)


def test_dns_names() -> None:
    assert NAMES == ("lbspeaker-webhook-service.lbspeaker-system.svc",
                     "lbspeaker-webhook-service.lbspeaker-system.svc.cluster.local")


def test_serving_cert_names_chain_and_validity(cs: CertSet) -> None:
    cert = x509.load_pem_x509_certificate(cs.cert)
    (ca,) = x509.load_pem_x509_certificates(cs.ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == list(NAMES)
    assert cert.issuer == ca.subject
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.not_valid_after_utc == T0 + 100 * DAY
    assert cert.not_valid_before_utc == T0 - timedelta(minutes=5)  # clock-skew backdate


def test_ip_literal_becomes_ip_san() -> None:
    cs = generate(["127.0.0.1", "localhost"], now=T0, validity=DAY)
    san = x509.load_pem_x509_certificate(cs.cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert rotation_due(cs, names=["127.0.0.1", "localhost"], now=T0) is Rotation.NOT_DUE


@pytest.mark.parametrize(("now", "want"), [
    (T0, Rotation.NOT_DUE),
    (T0 + 89 * DAY, Rotation.NOT_DUE),  # 11 of 100 days left (plus the 5 min backdate)
    (T0 + 91 * DAY, Rotation.EXPIRING),  # 9 left: less than 1/10
    (T0 + 200 * DAY, Rotation.EXPIRING),
    (T0 - DAY, Rotation.NOT_YET_VALID),
])
def test_rotation_due_by_time(cs: CertSet, now: datetime, want: Rotation) -> None:
    assert rotation_due(cs, names=NAMES, now=now) is want


def test_rotation_due_by_content(cs: CertSet) -> None:
    other = generate(NAMES, now=T0, validity=100 * DAY)
    assert rotation_due(None, names=NAMES, now=T0) is Rotation.MISSING
    assert rotation_due(CertSet(b"", b"", b""), names=NAMES, now=T0) is Rotation.MISSING
    assert rotation_due(dataclasses.replace(cs, cert=b"garbage"), names=NAMES, now=T0) is Rotation.UNREADABLE
    assert rotation_due(dataclasses.replace(cs, ca=b""), names=NAMES, now=T0) is Rotation.UNREADABLE
    assert rotation_due(cs, names=[*NAMES, "extra.svc"], now=T0) is Rotation.NAMES_CHANGED
    assert rotation_due(dataclasses.replace(cs, key=other.key), names=NAMES, now=T0) is Rotation.KEY_MISMATCH
    assert rotation_due(dataclasses.replace(cs, ca=other.ca), names=NAMES, now=T0) is Rotation.NOT_TRUSTED


def test_short_validity_backdates_a_tenth() -> None:
    cs = generate(NAMES, now=T0, validity=timedelta(seconds=10))
    cert = x509.load_pem_x509_certificate(cs.cert)
    assert cert.not_valid_before_utc == T0 - timedelta(seconds=1)
    assert rotation_due(cs, names=NAMES, now=T0 + timedelta(seconds=8)) is Rotation.NOT_DUE
    assert rotation_due(cs, names=NAMES, now=T0 + timedelta(seconds=9.5)) is Rotation.EXPIRING


def test_rotation_bundle_keeps_previous_ca_while_valid(cs: CertSet) -> None:
    new = generate(NAMES, now=T0 + 91 * DAY, validity=100 * DAY, previous_ca=cs.ca)
    cas = x509.load_pem_x509_certificates(new.ca)
    assert len(cas) == 2
    assert cas[1] == x509.load_pem_x509_certificates(cs.ca)[0]
    x509.load_pem_x509_certificate(new.cert).verify_directly_issued_by(cas[0])  # the new CA comes first
    # a third rotation drops the oldest CA: the bundle never grows beyond current + previous
    third = generate(NAMES, now=T0 + 182 * DAY, validity=100 * DAY, previous_ca=new.ca)
    assert x509.load_pem_x509_certificates(third.ca)[1] == cas[0]
    assert len(x509.load_pem_x509_certificates(third.ca)) == 2


def test_bundle_drops_expired_or_duplicate_previous(cs: CertSet) -> None:
    assert ca_bundle(cs.ca, cs.ca, now=T0) == cs.ca
    other = generate(NAMES, now=T0, validity=DAY)
    assert ca_bundle(other.ca, cs.ca, now=T0 + 101 * DAY) == other.ca
    assert ca_bundle(other.ca, b"not pem", now=T0) == other.ca


def test_no_names_is_an_error() -> None:
    with pytest.raises(ValueError, match="no dns names"):
        generate([], now=T0, validity=DAY)
