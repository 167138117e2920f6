"""Configuration files of a node (containerd, CNI, kubelet, kube-proxy) and its start script: pure text.

Traps these texts encode (measured on these machines): the sandbox withholds CAP_SYS_RESOURCE even
from root, so containerd needs ``restrict_oom_score_adj`` or every pod sandbox fails; kube-proxy
1.20 exits when its config file is rewritten, so files are only written when their text changed;
iptables from a dpkg -x'd package has no alternatives links and its libraries are off the loader
path, so small wrappers named iptables, iptables-save, ... go first on the node's PATH.
"""

from __future__ import annotations

import json
from pathlib import Path

from lbspeaker.lab.realk8s.shape import Cluster

IPTABLES_TOOLS = ("iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save",
                  "ip6tables-restore")


def write_if_changed(path: Path, text: str) -> None:
    """Write text to path only if it differs (kube-proxy 1.20 exits when its config is rewritten)."""
    try:
        if path.read_text() == text:
            return
    except OSError:
        pass
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def tool_wrappers(c: Cluster) -> dict[str, str]:
    """name -> script for iptables (nft backend) and conntrack from the unpacked runtime."""
    libs = c.runtime_dir / "usr/lib/x86_64-linux-gnu"
    out = {
        t: (f"#!/bin/bash\nexport LD_LIBRARY_PATH={libs} XTABLES_LIBDIR={libs}/xtables\n"
            f'exec -a {t} {c.runtime_dir}/usr/sbin/xtables-nft-multi "$@"\n')
        for t in IPTABLES_TOOLS
    }
    out["conntrack"] = f'#!/bin/sh\nexec env LD_LIBRARY_PATH={libs} {c.runtime_dir}/usr/sbin/conntrack "$@"\n'
    return out


def node_path(c: Cluster) -> str:
    """PATH of a node's processes: the wrappers first, then the cluster binaries and the runtime."""
    return ":".join([str(c.state_dir / "path"), str(c.bin_dir), str(c.runtime_dir / "usr/bin"),
                     str(c.runtime_dir / "usr/sbin"), "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


def containerd_toml(c: Cluster, i: int) -> str:
    """containerd 1.6 config: private root/state/socket, CRI with runc and the bridge CNI."""
    n, rt = c.node_dir(i), c.runtime_dir
    return f"""version = 2
root = "{n}/containerd/root"
state = "{n}/containerd/state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.internal.v1.tracing",
  "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "{n}/containerd.sock"
[ttrpc]
  address = "{n}/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "{n}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "lbspeaker.local/pause:1"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{rt}/usr/sbin/runc"
        Root = "{n}/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{rt}/usr/lib/cni"
    conf_dir = "{n}/cni"
"""


def cni_conflist(c: Cluster, i: int) -> str:
    """Bridge CNI (cni0, host-local IPAM on the node's /28) + portmap."""
    return json.dumps({
        "cniVersion": "0.4.0", "name": "lbspeaker-realk8s",
        "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "dataDir": str(c.node_dir(i) / "cni-ipam"),
                      "ranges": [[{"subnet": str(c.pod_net(i))}],
                                 *([[{"subnet": str(c.pod_net6(i))}]] if c.dual_stack else [])],
                      "routes": [{"dst": "0.0.0.0/0"}, *([{"dst": "::/0"}] if c.dual_stack else [])]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }, indent=1) + "\n"


def kubelet_yaml(c: Cluster, i: int) -> str:
    """KubeletConfiguration: webhook authn/authz, cgroupfs under the node's own cgroup parent."""
    ip = c.topo.node(i).v4.ip
    return f"""apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: {ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: "{c.pki / 'ca.crt'}"}}
authorization: {{mode: Webhook}}
cgroupDriver: cgroupfs
cgroupRoot: /{c.cgroup_name(i)}
cgroupsPerQOS: true
failSwapOn: false
resolvConf: ""
clusterDomain: cluster.local
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%"}}
podCIDR: {c.pod_net(i)}
featureGates: {{IPv6DualStack: {str(c.dual_stack).lower()}}}
maxPods: 14
serializeImagePulls: false
nodeStatusUpdateFrequency: 4s
"""


def kube_proxy_yaml(c: Cluster, i: int) -> str:
    """KubeProxyConfiguration: iptables mode, the node's LAN address."""
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {{kubeconfig: "{c.state_dir / 'kube-proxy.kubeconfig'}"}}
mode: iptables
hostnameOverride: {c.node_name(i)}
bindAddress: {c.topo.node(i).v4.ip}
clusterCIDR: "{c.pod_cidrs}"
featureGates: {{IPv6DualStack: {str(c.dual_stack).lower()}}}
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
iptables: {{syncPeriod: 10s, minSyncPeriod: 0s}}
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
"""


def kubelet_cmd(c: Cluster, i: int) -> list[str]:
    """Node i's kubelet command line (paths contain no spaces)."""
    n, name = c.node_dir(i), c.node_name(i)
    return [str(c.bin_dir / "kubelet"), f"--config={n}/kubelet.yaml",
            f"--kubeconfig={c.state_dir}/kubelet-{name}.kubeconfig", f"--root-dir={n}/kubelet",
            f"--cert-dir={n}/certs", f"--hostname-override={name}", f"--node-ip={c.topo.node(i).v4.ip}",
            "--container-runtime=remote", f"--container-runtime-endpoint=unix://{n}/containerd.sock",
            "--pod-infra-container-image=lbspeaker.local/pause:1", "--v=1"]


def inner_sh(c: Cluster, i: int) -> str:
    """The node's init: node-private /var/log and /run/containerd binds, containerd, images, kubelet, kube-proxy.

    Runs in the node's network namespace and a private (slave) mount namespace; every process it
    starts records its pid in the node directory.
    """
    n = c.node_dir(i)
    imports = " ".join(f'"{p}"' for p in c.images)
    return f"""#!/bin/bash
set -u
export PATH={node_path(c)}
mount --bind "{n}/varlog" /var/log
mount --bind "{n}/run-containerd" /run/containerd
containerd --config "{n}/containerd.toml" > "{n}/log/containerd.log" 2>&1 &
echo $! > "{n}/containerd.pid"
for _ in $(seq 100); do [ -S "{n}/containerd.sock" ] && break; sleep 0.1; done
for img in {imports}; do
  [ -f "$img" ] && ctr -a "{n}/containerd.sock" -n k8s.io images import "$img" \\
    >> "{n}/log/import.log" 2>&1
done
echo imported > "{n}/images.done"
{" ".join(kubelet_cmd(c, i))} >> "{n}/log/kubelet.log" 2>&1 &
echo $! > "{n}/kubelet.pid"
kube-proxy --config "{n}/kube-proxy.yaml" --v=1 > "{n}/log/kube-proxy.log" 2>&1 &
echo $! > "{n}/kube-proxy.pid"
wait
"""
