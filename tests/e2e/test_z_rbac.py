"""RBAC as the real API server enforces it: lbspeaker's service accounts never get 403, hold no unused verb.

Runs last (file order) over the audit log of the whole session: every request of the
lbspeaker-system service accounts, with its verb, resource and response code.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import yaml

from lbspeaker.lab.realk8s.cluster import audit_log, kubectl
from lbspeaker.lab.realk8s.shape import Cluster

RBAC = Path(__file__).resolve().parents[2] / "config" / "rbac" / "rbac.yaml"
SA_PREFIX = "system:serviceaccount:lbspeaker-system:"
Grant = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)

# Granted, needed, but not necessarily exercised in one e2e session; each with its reason.
NOT_ALWAYS_EXERCISED: dict[str, dict[Grant, str]] = {
    "controller": {("", "secrets", "update"): "webhook cert rotation: only below 1/10 of its validity"},
}


def granted(sa: str) -> set[Grant]:
    """(group, resource, verb) the manifests grant to service account sa."""
    docs = list(yaml.safe_load_all(RBAC.read_text()))
    roles = {(d["kind"], d["metadata"]["name"]): d for d in docs if d and d["kind"] in ("Role", "ClusterRole")}
    out: set[Grant] = set()
    for b in docs:
        if not b or b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s.get("name") == sa for s in b["subjects"]):
            continue
        role = roles[(b["roleRef"]["kind"], b["roleRef"]["name"])]
        for rule in role["rules"]:
            for g in rule["apiGroups"]:
                for r in rule["resources"]:
                    out |= {(g, r, v) for v in rule["verbs"]}
    return out


def audit(c: Cluster) -> list[dict[str, object]]:
    """The audit events of lbspeaker's service accounts."""
    lines = audit_log(c).read_text().splitlines()
    return [e for e in map(json.loads, lines) if str(e["user"]["username"]).startswith(SA_PREFIX)]


def test_rbac_is_exactly_what_the_components_use(real: Cluster) -> None:
    # an open watch is audited only once it sends its first bytes or ends: restart the components
    # (new pods list and watch again) so every watch of the session reaches the log
    kubectl(real, "-n", "lbspeaker-system", "rollout", "restart", "daemonset/speaker", "deployment/controller")
    for obj in ("daemonset/speaker", "deployment/controller"):
        kubectl(real, "-n", "lbspeaker-system", "rollout", "status", obj, "--timeout=120s", timeout=130)
    events = audit(real)
    used: dict[str, set[Grant]] = defaultdict(set)
    denied: list[str] = []
    for e in events:
        sa = str(e["user"]["username"]).removeprefix(SA_PREFIX)  # type: ignore[index]
        ref = e.get("objectRef") or {}
        if not ref.get("resource"):
            continue  # non-resource URLs (discovery), granted to every authenticated user
        res = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        grant = (ref.get("apiGroup", ""), res, str(e["verb"]))
        code = (e.get("responseStatus") or {}).get("code", 0)
        if code == 403:
            denied.append(f"{sa}: {grant} {e.get('requestURI')}")
        else:
            used[sa].add(grant)
    assert events, "no audit events of lbspeaker's service accounts: did the components run?"
    assert not denied, "requests denied by RBAC (missing verbs):\n" + "\n".join(sorted(set(denied)))
    for sa in ("controller", "speaker"):
        unused = granted(sa) - used[sa] - set(NOT_ALWAYS_EXERCISED.get(sa, {}))
        assert not unused, f"{sa} holds verbs it never used (least privilege): {sorted(unused)}"


def test_can_i_matches_the_manifests(real: Cluster) -> None:
    # the API server's own answer for a few grants and non-grants
    def can(sa: str, *args: str) -> bool:
        p = kubectl(real, "auth", "can-i", f"--as={SA_PREFIX}{sa}", *args, check=False)
        return p.stdout.strip() == "yes"

    assert can("speaker", "list", "endpointslices.discovery.k8s.io")
    assert can("controller", "patch", "services/status")
    assert not can("speaker", "patch", "services/status")
    assert not can("controller", "list", "secrets", "-n", "default")
    assert not can("speaker", "create", "pods")
