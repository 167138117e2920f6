"""The controller's validating webhook as a real API server calls it, driven by the real kubectl.

The webhook runs in-process (controller.webhook.WebhookServer on a random loopback port, its
config from the controller's own informers), registered by a ValidatingWebhookConfiguration with
``clientConfig.url`` and failurePolicy Fail, so every verdict below is the webhook's: an
unreachable webhook would refuse everything. Its certificate and caBundle come from the
controller's CertRotator, which the last check makes rotate within seconds.
"""

from __future__ import annotations

import base64
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from controller.certrotation import CertRotator, CertSettings
from controller.controller import Controller
from controller.webhook import WebhookServer
from lbspeaker.core.loader import RawConfig
from lbspeaker.k8s.client import NAMESPACES, VALIDATING_WEBHOOK_CONFIGURATIONS, Kube
from tests.contract.conftest import K8s, Run, crd_established, ensure_crd, gate
from tests.contract.helpers import uniq, wait_for
from tests.contract.servers import WEBHOOKS

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]
HOOK = "config.validation.lbspeaker.io"
LABEL = "contract.lbspeaker.io/webhook"


@dataclass
class Hook:
    """One running webhook (server + rotator + the controller's caches) and its registration."""

    kube: Kube
    ns: str
    vwc: str
    server: WebhookServer
    rotator: CertRotator
    ctrl: Controller

    def bundle(self) -> bytes:
        obj = self.kube.get(VALIDATING_WEBHOOK_CONFIGURATIONS, self.vwc)
        return base64.b64decode(obj["webhooks"][0]["clientConfig"].get("caBundle") or "")


def _vwc(name: str, url: str, ns: str) -> dict[str, object]:
    """Our manifest's webhook, reached by url and scoped to the test namespace, failurePolicy Fail."""
    (_, shipped) = [d for d in yaml.safe_load_all((ROOT / "config" / "webhook" / "webhook.yaml").read_text()) if d]
    (hook,) = shipped["webhooks"]
    hook = {**hook, "clientConfig": {"url": url}, "failurePolicy": "Fail",
            "namespaceSelector": {"matchLabels": {LABEL: ns}}}
    return {"metadata": {"name": name}, "webhooks": [hook]}


@contextlib.contextmanager
def running_hook(k8s: K8s, ns: str, *, validity: timedelta, interval: float) -> Iterator[Hook]:
    """Start caches, server and rotator; register the webhook; remove everything afterwards."""
    kube = Kube.from_kubeconfig(str(k8s.api.kubeconfig))
    stop = threading.Event()
    ctrl = Controller(kube, namespace=ns, bgp_caches=True)
    server = WebhookServer("127.0.0.1", 0, config=ctrl.raw_config, namespace=ns)
    vwc = uniq("lbc-webhook")
    settings = CertSettings(namespace=ns, secret=uniq("lbc-webhook-cert"), configuration=vwc,
                            names=("127.0.0.1",), validity=validity, check_interval=interval)
    rotator = CertRotator(kube, settings, on_cert=server.load)
    try:
        server.start()
        assert ctrl.start_informers(stop)
        kube.patch(NAMESPACES, ns, {"metadata": {"labels": {LABEL: ns}}})
        kube.create(VALIDATING_WEBHOOK_CONFIGURATIONS, _vwc(vwc, f"https://127.0.0.1:{server.port}/validate", ns))
        rotator.start()
        hook = Hook(kube, ns, vwc, server, rotator, ctrl)
        wait_for(lambda: server.ready and bool(hook.bundle()), timeout=30, what="certificate and caBundle in place")
        yield hook
    finally:
        with contextlib.suppress(Exception):
            kube.delete(VALIDATING_WEBHOOK_CONFIGURATIONS, vwc)
        rotator.stop()
        server.stop()
        stop.set()
        for inf in ctrl._informers:
            inf.stop()
        kube.close()


@pytest.fixture
def lb_crds(k8s: K8s) -> K8s:
    """k8s on a server that calls webhooks, with config/crd registered."""
    gate(k8s.api, WEBHOOKS, "does not call admission webhooks")
    for f in sorted((ROOT / "config" / "crd").glob("lbspeaker.io_*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            if doc:
                ensure_crd(k8s, doc)
                assert crd_established(k8s, doc["metadata"]["name"])
    return k8s


@pytest.fixture
def hook(lb_crds: K8s, ns: str) -> Iterator[Hook]:
    with running_hook(lb_crds, ns, validity=timedelta(days=1), interval=1.0) as h:
        yield h


def pool(ns: str, name: str, *addresses: str) -> str:
    return yaml.safe_dump({"apiVersion": "lbspeaker.io/v1beta1", "kind": "IPAddressPool",
                           "metadata": {"name": name, "namespace": ns}, "spec": {"addresses": list(addresses)}})


def denied(p: object, message: str) -> None:
    """kubectl failed and printed the webhook's refusal with exactly message."""
    out = f"{p.stdout}{p.stderr}"  # type: ignore[attr-defined]
    assert p.returncode != 0, out  # type: ignore[attr-defined]
    assert f'admission webhook "{HOOK}" denied the request: {message}' in out, out


def cached(h: Hook, kind: str, name: str) -> None:
    wait_for(lambda: any(o["metadata"]["name"] == name for o in (h.ctrl.raw_config() or RawConfig()).of_kind(kind)),
             timeout=10, what=f"{kind} {name} in the controller's cache")


def test_reversed_range_refused_valid_pool_accepted(hook: Hook, kubectl: Run) -> None:
    ns = hook.ns
    p = kubectl("apply", "-f", "-", stdin=pool(ns, "lab", "192.0.2.100/32", "192.0.2.40-192.0.2.10"), check=False)
    denied(p, "parsing IPAddressPool 'lab': spec.addresses[1]: '192.0.2.40-192.0.2.10': start after end")
    assert kubectl("get", "ipaddresspools", "-n", ns, "-o", "name").stdout.strip() == ""
    p = kubectl("apply", "-f", "-", stdin=pool(ns, "lab", "192.0.2.100/32", "192.0.2.10-192.0.2.40"))
    assert p.stdout.strip() == "ipaddresspool.lbspeaker.io/lab created"
    assert hook.server.refused == 1


def test_overlap_and_invalid_update_refused_delete_allowed(hook: Hook, kubectl: Run) -> None:
    ns = hook.ns
    kubectl("apply", "-f", "-", stdin=pool(ns, "base", "192.0.2.0/28"))
    cached(hook, "IPAddressPool", "base")
    p = kubectl("apply", "-f", "-", stdin=pool(ns, "other", "192.0.2.8/29"), check=False)
    denied(p, "parsing IPAddressPool 'other': spec.addresses[0]: '192.0.2.8/29' overlaps '192.0.2.0/28' "
              "of IPAddressPool 'base'")
    p = kubectl("apply", "-f", "-", stdin=pool(ns, "base", "192.0.2.0/28", "192.0.2.40-192.0.2.10"), check=False)
    denied(p, "parsing IPAddressPool 'base': spec.addresses[1]: '192.0.2.40-192.0.2.10': start after end")
    got = kubectl("get", "ipaddresspool", "base", "-n", ns, "-o", "jsonpath={.spec.addresses}").stdout
    assert "192.0.2.40" not in got, got  # the UPDATE did not happen
    assert kubectl("delete", "ipaddresspool", "base", "-n", ns).returncode == 0


def test_bad_l2advertisement_selector_refused(hook: Hook, kubectl: Run) -> None:
    doc = {"apiVersion": "lbspeaker.io/v1beta1", "kind": "L2Advertisement",
           "metadata": {"name": "l2", "namespace": hook.ns},
           "spec": {"nodeSelectors": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}
    p = kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc), check=False)
    denied(p, "parsing L2Advertisement 'l2': spec.nodeSelectors[0].matchExpressions[0].values: "
              "must be non-empty for operator 'In'")
    doc["spec"] = {"nodeSelectors": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}
    assert kubectl("apply", "-f", "-", stdin=yaml.safe_dump(doc)).returncode == 0


def peer(ns: str, name: str, **spec: object) -> str:
    return yaml.safe_dump({"apiVersion": "lbspeaker.io/v1beta1", "kind": "BGPPeer",
                           "metadata": {"name": name, "namespace": ns},
                           "spec": {"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1", **spec}})


def test_bad_bgppeer_refused_and_references_judged_live(hook: Hook, kubectl: Run) -> None:
    ns = hook.ns
    # out of range: the CRD schema (which runs before admission) refuses it, naming the field
    p = kubectl("apply", "-f", "-", stdin=peer(ns, "far", peerASN=4294967296), check=False)
    assert p.returncode != 0 and "spec.peerASN" in p.stderr, p.stderr
    # what only the parser knows: the webhook refuses it
    p = kubectl("apply", "-f", "-", stdin=peer(ns, "ibgp", peerASN=64500, ebgpMultiHop=True), check=False)
    denied(p, f"parsing BGPPeer '{ns}/ibgp': spec.ebgpMultiHop: only for eBGP, but myASN and peerASN are both 64500")
    adv = yaml.safe_dump({"apiVersion": "lbspeaker.io/v1beta1", "kind": "BGPAdvertisement",
                          "metadata": {"name": "adv", "namespace": ns}, "spec": {"peers": ["tor"]}})
    p = kubectl("apply", "-f", "-", stdin=adv, check=False)
    denied(p, f"parsing BGPAdvertisement '{ns}/adv': spec.peers[0]: BGPPeer 'tor' does not exist or is invalid")
    kubectl("apply", "-f", "-", stdin=peer(ns, "tor"))
    cached(hook, "BGPPeer", "tor")
    assert kubectl("apply", "-f", "-", stdin=adv).stdout.strip() == "bgpadvertisement.lbspeaker.io/adv created"


def test_cert_rotation_patches_ca_bundle_and_server_reloads(lb_crds: K8s, ns: str, kubectl: Run) -> None:
    # 4 s of validity: rotation is due ~3.6 s after each new certificate
    with running_hook(lb_crds, ns, validity=timedelta(seconds=4), interval=0.2) as h:
        first = h.bundle()
        wait_for(lambda: h.bundle() != first and h.rotator.rotations >= 2, timeout=30, what="a rotation")
        second = h.bundle()
        cas = x509.load_pem_x509_certificates(second)
        assert x509.load_pem_x509_certificates(first)[0] in cas[1:]  # the previous CA still trusted
        served = x509.load_pem_x509_certificate(h.server.loaded[0])  # type: ignore[index]
        assert any(served.issuer == ca.subject for ca in cas)
        # the API server reaches the webhook with its rotated certificate (no restart)
        p = kubectl("apply", "-f", "-", stdin=pool(ns, "lab", "192.0.2.40-192.0.2.10"), check=False)
        denied(p, "parsing IPAddressPool 'lab': spec.addresses[0]: '192.0.2.40-192.0.2.10': start after end")
        assert h.rotator.bundle_patches >= 2
