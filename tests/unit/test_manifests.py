"""The packaged CRDs and samples are config/crd and config/samples, byte for byte, also in a wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from lbspeaker import manifests

ROOT = Path(__file__).resolve().parents[2]
CONFIG = {"crd": ROOT / "config" / "crd", "samples": ROOT / "config" / "samples"}


def _config_files(folder: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(CONFIG[folder].glob("*.yaml"))}


def test_package_data_equals_config() -> None:
    assert {f.name: f.read_bytes() for f in manifests.crd_files()} == _config_files("crd")
    assert {f.name: f.read_bytes() for f in manifests.sample_files()} == _config_files("samples")


def test_crd_documents_are_the_crds() -> None:
    docs = list(manifests.crd_documents())
    want = [d for p in sorted(CONFIG["crd"].glob("lbspeaker.io_*.yaml")) for d in yaml.safe_load_all(p.read_text())]
    assert docs == want
    assert {d["kind"] for d in docs} == {manifests.CRD_KIND}
    assert "ipaddresspools.lbspeaker.io" in {d["metadata"]["name"] for d in docs}


def test_kustomization_lists_every_crd() -> None:
    kust = yaml.safe_load((CONFIG["crd"] / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in CONFIG["crd"].glob("lbspeaker.io_*.yaml"))


def test_sample() -> None:
    assert manifests.sample("lab") == manifests.sample("lab.yaml")
    assert [d["kind"] for d in manifests.sample("lab")] == ["IPAddressPool", "L2Advertisement"]
    with pytest.raises(manifests.ManifestError, match=r"loading sample 'nope': no such sample \(have: bgp, lab\)"):
        manifests.sample("nope")


@pytest.mark.slow
def test_wheel_carries_the_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("config", "lbspeaker", "controller"):
        shutil.copytree(ROOT / name, src / name, symlinks=True, ignore=ignore)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "w"), str(src)],
                   check=True, capture_output=True, timeout=240)
    (whl,) = (tmp_path / "w").glob("lbspeaker-*.whl")
    with zipfile.ZipFile(whl) as z:
        for folder in CONFIG:
            packed = {Path(n).name: z.read(n) for n in z.namelist() if n.startswith(f"lbspeaker/manifests/{folder}/")}
            assert packed == _config_files(folder), folder
        assert "lbspeaker/manifests/__init__.py" in z.namelist()


def _docs(path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "config" / path).read_text()) if d]


def test_webhook_manifests_match_the_controller() -> None:
    from controller.certrotation import CONFIGURATION, SERVICE
    from controller.controller import resources
    from controller.webhook import PATH

    svc, vwc = _docs("webhook/webhook.yaml")
    assert (svc["kind"], svc["metadata"]["name"]) == ("Service", SERVICE)
    assert (vwc["kind"], vwc["metadata"]["name"]) == ("ValidatingWebhookConfiguration", CONFIGURATION)
    (hook,) = vwc["webhooks"]
    assert hook["admissionReviewVersions"] == ["v1"] and hook["sideEffects"] == "None"
    assert hook["failurePolicy"] == "Ignore"  # docs/webhook.md says why
    assert "caBundle" not in hook["clientConfig"]  # the controller owns it
    ref = hook["clientConfig"]["service"]
    assert (ref["name"], ref["namespace"], ref["path"]) == (SERVICE, "lbspeaker-system", PATH)
    (rule,) = hook["rules"]
    assert rule["operations"] == ["CREATE", "UPDATE"]
    assert sorted(rule["resources"]) == sorted(r.plural for r in resources() if r.group == "lbspeaker.io")
    assert rule["apiVersions"] == sorted({r.version for r in resources() if r.group == "lbspeaker.io"})
    # the Service reaches the controller pods' webhook port, which the controller listens on
    (deploy,) = _docs("controller/controller.yaml")
    (ctr,) = deploy["spec"]["template"]["spec"]["containers"]
    assert svc["spec"]["selector"] == deploy["spec"]["selector"]["matchLabels"]
    port = next(p for p in ctr["ports"] if p["name"] == svc["spec"]["ports"][0]["targetPort"])
    assert ctr["args"][ctr["args"].index("--webhook-listen") + 1] == f":{port['containerPort']}"
    assert "../webhook" in yaml.safe_load((ROOT / "config" / "default" / "kustomization.yaml").read_text())["bases"]


def test_controller_rbac_narrows_webhook_writes_by_name() -> None:
    from controller.certrotation import CONFIGURATION, SECRET

    rules = [r for d in _docs("rbac/rbac.yaml") if d["kind"] in ("Role", "ClusterRole")
             and d["metadata"]["name"] == "lbspeaker:controller" for r in d["rules"]]
    secrets = [r for r in rules if "secrets" in r["resources"]]
    assert {(tuple(r.get("resourceNames", ())), tuple(r["verbs"])) for r in secrets} == {
        ((SECRET,), ("get", "update")), ((), ("create",))}
    (vwc,) = [r for r in rules if "validatingwebhookconfigurations" in r["resources"]]
    assert vwc["resourceNames"] == [CONFIGURATION] and vwc["verbs"] == ["get", "update"]
