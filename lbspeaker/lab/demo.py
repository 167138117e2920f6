"""``lbctl lab demo``: the whole path once — pool, LoadBalancer Service, EXTERNAL-IP, a client reaching it."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time

from lbspeaker import manifests
from lbspeaker.core.errors import ApiError, LabError
from lbspeaker.k8s.client import ENDPOINTSLICES, SERVICES, Kube, apply
from lbspeaker.lab import bootstrap
from lbspeaker.lab.lab import Say, Steps, up
from lbspeaker.lab.netns import run
from lbspeaker.lab.topology import Topology

FETCH = (
    "import sys, urllib.request\n"
    "with urllib.request.urlopen(sys.argv[1], timeout=2) as r: print(r.read().decode().strip())\n"
)


def kubectl(topo: Topology, *args: str, timeout: float = 20.0, input: str | None = None
            ) -> subprocess.CompletedProcess[str]:
    """Run the machine's kubectl against the lab."""
    exe = shutil.which("kubectl")
    if exe is None:
        raise LabError("running kubectl: not installed (apt-get install kubernetes-client)")
    return subprocess.run(
        [exe, "--kubeconfig", str(topo.kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        input=input,
    )


def fetch_from_client(url: str, *, timeout: float = 15.0, client_ns: str = "lbk-client") -> str:
    """GET url from the client namespace, retrying until it answers; returns the body."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        p = subprocess.run(
            ["ip", "netns", "exec", client_ns, sys.executable, "-c", FETCH, url],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if p.returncode == 0 and p.stdout.strip():
            return p.stdout.strip()
        last = (p.stderr.strip().splitlines() or [""])[-1]
        time.sleep(0.2)
    raise LabError(f"reaching {url} from the client namespace: no answer after {timeout:.0f}s: {last}")


def neighbour_of(topo: Topology, vip: str) -> tuple[str, str]:
    """(MAC, node name) that the client's kernel resolved vip to."""
    out = run(["ip", "-n", topo.client.ns, "neigh", "show", vip], check=False).split()
    mac = out[out.index("lladdr") + 1] if "lladdr" in out else ""
    for m in topo.node_members:
        link = run(["ip", "-n", m.ns, "link", "show", "eth0"], check=False)
        if mac and mac in link:
            return mac, m.name
    return mac, "?"


def demo(topo: Topology, *, say: Say) -> None:
    """Run the demo; raises LabError when any step fails."""
    up(topo, say=say, fresh=True)
    kube = Kube.from_kubeconfig(str(topo.kubeconfig))
    steps = Steps(4, say)
    ips: list[str] = []

    def pool() -> None:
        for obj in manifests.sample("lab"):
            apply(kube, obj)

    def service() -> None:
        body = bootstrap.demo_service()
        # kubectl create sends protobuf bodies, which the embedded API server does not decode:
        # render the same object client-side and apply it as JSON
        p = kubectl(topo, "create", "service", "loadbalancer", "demo", "--tcp=80:8080", "--dry-run=client",
                    "-o", "json")
        if p.returncode == 0:
            p = kubectl(topo, "apply", "-f", "-", input=p.stdout)
        if p.returncode != 0 and "AlreadyExists" not in p.stderr:
            say(f"    kubectl create service failed ({p.stderr.strip()}); creating it through the API")
            try:
                kube.create(SERVICES, body, namespace="default")
            except ApiError as err:
                raise LabError(f"creating service 'default/demo': {err}") from err
        kube.create(ENDPOINTSLICES, bootstrap.demo_endpoints(topo), namespace="default")

    def external_ip() -> None:
        ips.extend(bootstrap.wait_ingress(kube, "demo"))
        say(f"    default/demo EXTERNAL-IP {', '.join(ips)}")

    steps.run("sample IPAddressPool + L2Advertisement (config/samples/lab.yaml)", pool)
    steps.run("LoadBalancer Service default/demo (kubectl create service loadbalancer demo --tcp=80:8080)",
              service)
    steps.run("controller assigns an EXTERNAL-IP", external_ip)
    answer: list[str] = []
    steps.run(
        f"client namespace reaches http://{ips[0] if ips else '?'}/",
        lambda: answer.append(fetch_from_client(f"http://{ips[0]}/")),
    )
    mac, node = neighbour_of(topo, ips[0])
    say("")
    say(f"$ ip netns exec {topo.client.ns} curl http://{ips[0]}/")
    say(answer[0])
    say(f"client ARP entry: {ips[0]} -> {mac} ({node}, the elected speaker)")
    say("")
    say("$ kubectl get svc demo")
    p = kubectl(topo, "get", "svc", "demo")
    say(p.stdout.rstrip() if p.returncode == 0 else f"(kubectl failed: {p.stderr.strip()})")
    say("")
    say(
        f"The lab stays up: KUBECONFIG={topo.kubeconfig} kubectl get svc -A | lbctl lab kubectl -- get svc | "
        "lbctl lab down"
    )
