"""The real cluster's network: the lab's LAN switch and members, pod routes, the host's management link.

Same shape as the embedded-server lab (``lbspeaker.lab.lab.build_network``) minus its kube-proxy
stand-in: here the real kube-proxy (iptables) runs on every node, and no address of a Service is
put on any interface. With ``nics=2`` every node is VirtualBox-shaped: ``enp0s3`` on a NAT-like
network (198.51.100.128/25, default route there, like VirtualBox's NAT adapter) and ``enp0s8`` on
the host-only LAN where the client and the pool live.
"""

from __future__ import annotations

import ipaddress

from lbspeaker.lab.netns import add_namespace, ip, run, sysctl, veth
from lbspeaker.lab.realk8s.shape import Cluster
from lbspeaker.lab.topology import WAN_V4

NAT_NET = ipaddress.IPv4Network("198.51.100.128/25")
NAT_GATEWAY = NAT_NET.network_address + 1  # nobody answers there: like a NAT adapter with no way out
NAT_NET6 = ipaddress.IPv6Network("2001:db8:51::/64")
NAT_GATEWAY6 = NAT_NET6.network_address + 1
NAT_PROBE = ipaddress.IPv4Interface(f"{NAT_NET.network_address + 100}/{NAT_NET.prefixlen}")


def nat_probe_ns(c: Cluster) -> str:
    """A namespace on the NAT-like network (nics=2): where a VIP must never be answered."""
    return f"{c.prefix}natprobe"


def lan_if(c: Cluster) -> str:
    """The name of a node's LAN NIC."""
    return "enp0s8" if c.nics == 2 else "eth0"


def nat_if(c: Cluster) -> str:
    """The name of a node's NAT-like NIC (nics=2 only)."""
    return "enp0s3"


def nat_address(i: int) -> ipaddress.IPv4Interface:
    """Node i's address on the NAT-like network."""
    return ipaddress.IPv4Interface(f"{NAT_NET.network_address + 10 + i}/{NAT_NET.prefixlen}")


def node_routes(c: Cluster, i: int) -> None:
    """Node i's routes (again after a link flap flushed them): default, other nodes' pods, the WAN."""
    t, m = c.topo, c.topo.node(i)
    # a default route, as every real node has: the kernel routes a ClusterIP (203.0.113.129 for
    # the API server) before kube-proxy's DNAT, so without one hostNetwork pods get ENETUNREACH.
    # Single NIC: via the LAN's .1 (the BGP router when there is one).
    if c.nics == 2:
        ip("route", "replace", "default", "via", str(NAT_GATEWAY), "dev", nat_if(c), ns=m.ns)
    else:
        ip("route", "replace", "default", "via", str(t.router.v4.ip), "dev", lan_if(c), ns=m.ns)
    for j, other in enumerate(t.node_members, start=1):
        if j != i:  # what a simple CNI (kindnet, flannel host-gw) does: other nodes' pod nets via them
            ip("route", "replace", str(c.pod_net(j)), "via", str(other.v4.ip), ns=m.ns)
            if c.dual_stack:
                ip("-6", "route", "replace", str(c.pod_net6(j)), "via", str(other.v6.ip), ns=m.ns)
    if c.dual_stack:  # like the IPv4 default: ClusterIPs need a route before kube-proxy's DNAT
        gw6 = t.router.v6.ip if c.nics == 1 else NAT_GATEWAY6
        ip("-6", "route", "replace", "default", "via", str(gw6), "dev", lan_if(c) if c.nics == 1 else nat_if(c),
           ns=m.ns)
    if t.bgp:  # replies to the WAN client go back through the router (lbspeaker.lab.bgp.build_router)
        ip("route", "replace", str(WAN_V4), "via", str(t.router.v4.ip), ns=m.ns)


def build(c: Cluster) -> None:
    """Namespaces, the LAN bridge, (NAT bridge,) node forwarding and pod routes, the host link."""
    t = c.topo
    sw = t.switch_ns
    add_namespace(sw)
    for key in ("arptables", "iptables", "ip6tables"):
        run(["sysctl", "-qw", f"net.bridge.bridge-nf-call-{key}=0"], ns=sw, check=False)
    ip("link", "add", "br0", "type", "bridge", "mcast_snooping", "1", "mcast_querier", "1", ns=sw)
    ip("link", "set", "br0", "up", ns=sw)
    if c.nics == 2:
        ip("link", "add", "nat0", "type", "bridge", ns=sw)
        ip("link", "set", "nat0", "up", ns=sw)
        add_namespace(nat_probe_ns(c))
        veth(nat_probe_ns(c), "eth0", sw, "q-probe")
        ip("link", "set", "q-probe", "master", "nat0", ns=sw)
        ip("addr", "add", str(NAT_PROBE), "dev", "eth0", ns=nat_probe_ns(c))
    nodes = {m.ns for m in t.node_members}
    for m in t.lan_members:
        add_namespace(m.ns)
        sysctl(m.ns, "net.ipv6.conf.all.accept_dad", "0")
        sysctl(m.ns, "net.ipv6.conf.default.accept_dad", "0")
        for scope in ("all", "default"):
            sysctl(m.ns, f"net.ipv6.conf.{scope}.keep_addr_on_down", "1")
        dev = lan_if(c) if m.ns in nodes else "eth0"
        if m.ns in nodes and c.nics == 2:
            i = int(m.name.removeprefix("node"))
            veth(m.ns, nat_if(c), sw, f"q-{m.name}"[:15])
            ip("link", "set", f"q-{m.name}"[:15], "master", "nat0", ns=sw)
            ip("addr", "add", str(nat_address(i)), "dev", nat_if(c), ns=m.ns)
            ip("addr", "add", f"{NAT_NET6.network_address + 10 + i}/64", "dev", nat_if(c), "nodad", ns=m.ns)
        veth(m.ns, dev, sw, m.switch_port)
        ip("link", "set", m.switch_port, "master", "br0", ns=sw)
        ip("addr", "add", str(m.v4), "dev", dev, ns=m.ns)
        ip("addr", "add", str(m.v6), "dev", dev, "nodad", ns=m.ns)
    for i, m in enumerate(t.node_members, start=1):
        sysctl(m.ns, "net.ipv4.ip_forward", "1")
        sysctl(m.ns, "net.ipv4.conf.all.rp_filter", "0")
        sysctl(m.ns, "net.ipv6.conf.all.forwarding", "1")
        node_routes(c, i)
    for j, other in enumerate(t.node_members, start=1):  # the control plane reaches pods (webhooks, logs)
        ip("route", "replace", str(c.pod_net(j)), "via", str(other.v4.ip), ns=t.api.ns)
        if c.dual_stack:
            ip("-6", "route", "replace", str(c.pod_net6(j)), "via", str(other.v6.ip), ns=t.api.ns)
    veth(t.api.ns, "mgmt0", None, t.host_if)
    ip("addr", "add", str(t.api_mgmt), "dev", "mgmt0", ns=t.api.ns)
    ip("addr", "add", str(t.host_mgmt), "dev", t.host_if)
