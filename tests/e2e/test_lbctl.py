"""lbctl against the real cluster: services list and explain, with the user's kubeconfig."""

from __future__ import annotations

import os
import subprocess
import sys

from lbspeaker.lab.realk8s.cluster import kubectl
from lbspeaker.lab.realk8s.shape import Cluster
from tests.e2e.util import l2_node, lb_ip, wait_for


def _lbctl(real: Cluster, *args: str, rc: int = 0) -> str:
    p = subprocess.run([sys.executable, "-m", "lbspeaker.cli.main", *args], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "KUBECONFIG": str(real.kubeconfig)}, check=False)
    assert p.returncode == rc, (p.returncode, p.stdout, p.stderr)
    return p.stdout


def test_services_list_and_explain(real: Cluster) -> None:
    kubectl(real, "create", "service", "loadbalancer", "shown", "--tcp=80:8080")
    vip = lb_ip(real, "shown")
    node = wait_for(lambda: l2_node(real, "shown"), timeout=20, what="ServiceL2Status of default/shown")
    listing = _lbctl(real, "services", "list", "-o", "wide")
    row = next(line for line in listing.splitlines() if "shown" in line)
    assert vip in row and node in row, listing
    explain = _lbctl(real, "explain", "default/shown")
    assert f"holds {vip} from pool 'lab'" in explain, explain
    assert f"elected node '{node}'" in explain, explain

    # a Service that cannot get an IP: the reason is named
    kubectl(real, "create", "service", "loadbalancer", "unlucky", "--tcp=80:8080")
    kubectl(real, "annotate", "svc", "unlucky", "lbspeaker.io/loadBalancerIPs=198.51.100.77")
    # (explain exits 1 when the Service has no IP, so scripts can test it)
    why = wait_for(lambda: (lambda t: t if "AllocationFailed" in t else None)(
        _lbctl(real, "explain", "default/unlucky", rc=1)), timeout=20, what="explain of default/unlucky")
    assert "✘" in why and "requested IP 198.51.100.77 belongs to no pool" in why, why
    kubectl(real, "delete", "svc", "shown", "unlucky")
