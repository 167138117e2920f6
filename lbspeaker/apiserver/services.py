"""Service defaulting, validation and the clusterIP / nodePort allocators.

Follows the real Service REST strategy on the fields lbspeaker uses: type, ports (protocol TCP,
targetPort = port), sessionAffinity, ipFamilies/ipFamilyPolicy, clusterIP(s) allocated from the
configured service CIDRs (default 198.51.100.0/24 and 2001:db8:ffff::/108, documentation ranges,
never routed), nodePorts 30000-32767 for NodePort/LoadBalancer unless
``allocateLoadBalancerNodePorts: false``, healthCheckNodePort for ``externalTrafficPolicy: Local``.
clusterIP is immutable; allocations omitted on update are carried over from the stored object.
Allocators are only touched under the store lock.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from lbspeaker.apiserver.status import ApiStatusError, FieldError, invalid

JsonObj = dict[str, Any]
IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
NODE_PORTS = range(30000, 32768)
_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


class Allocators:
    """Cluster IPs per family and node ports; rebuilt from stored Services on load."""

    def __init__(self, cidrs: tuple[str, ...]) -> None:
        self.nets: dict[str, IPNet] = {}
        for c in cidrs:
            net = ipaddress.ip_network(c, strict=False)
            self.nets["IPv4" if net.version == 4 else "IPv6"] = net
        self.ips: set[str] = set()
        self.ports: set[int] = set()
        self._next_ip: dict[str, int] = {}
        self._next_port = NODE_PORTS.start

    def alloc_ip(self, family: str) -> str:
        """Allocate a free cluster IP of one family (skipping network and first address)."""
        net = self.nets.get(family)
        if net is None:
            raise ApiStatusError(422, f"no service CIDR configured for family {family}", reason="Invalid")
        size = net.num_addresses
        start = self._next_ip.get(family, 2)
        for step in range(size):
            off = (start + step) % size
            if off < 2 or (net.version == 4 and off == size - 1):
                continue
            ip = str(net.network_address + off)
            if ip not in self.ips:
                self.ips.add(ip)
                self._next_ip[family] = off + 1
                return ip
        raise ApiStatusError(
            500,
            f"Internal error occurred: failed to allocate a serviceIP: range is full ({net})",
            reason="InternalError",
        )

    def alloc_port(self) -> int:
        """Allocate a free node port."""
        n = len(NODE_PORTS)
        for step in range(n):
            p = NODE_PORTS.start + (self._next_port - NODE_PORTS.start + step) % n
            if p not in self.ports:
                self.ports.add(p)
                self._next_port = p + 1 if p + 1 < NODE_PORTS.stop else NODE_PORTS.start
                return p
        raise ApiStatusError(
            500,
            "Internal error occurred: failed to allocate a nodePort: range is full",
            reason="InternalError",
        )

    def holdings(self, svc: JsonObj) -> tuple[set[str], set[int]]:
        """The IPs and node ports a stored Service holds."""
        spec = svc.get("spec") or {}
        ips = {ip for ip in spec.get("clusterIPs") or [] if ip and ip != "None"}
        ports = {p["nodePort"] for p in spec.get("ports") or [] if isinstance(p, dict) and p.get("nodePort")}
        if spec.get("healthCheckNodePort"):
            ports.add(int(spec["healthCheckNodePort"]))
        return ips, ports

    def take(self, svc: JsonObj) -> None:
        """Mark a stored Service's allocations as used."""
        ips, ports = self.holdings(svc)
        self.ips |= ips
        self.ports |= ports

    def release(self, svc: JsonObj) -> None:
        """Free a Service's allocations."""
        ips, ports = self.holdings(svc)
        self.ips -= ips
        self.ports -= ports


def prepare(svc: JsonObj, old: JsonObj | None, alloc: Allocators) -> None:
    """Default and validate a Service in place; allocate what it needs (releasing on failure)."""
    name = str((svc.get("metadata") or {}).get("name", ""))
    spec = svc.setdefault("spec", {})
    if not isinstance(spec, dict):
        raise invalid("Service", name, [FieldError("spec", "FieldValueTypeInvalid", "must be an object", spec)])
    ospec = (old or {}).get("spec") or {}
    errs: list[FieldError] = []
    stype = spec.setdefault("type", "ClusterIP")
    if stype not in _TYPES:
        errs.append(
            FieldError(
                "spec.type",
                "FieldValueNotSupported",
                "supported values: " + ", ".join(f'"{t}"' for t in _TYPES),
                stype,
            )
        )
        stype = "ClusterIP"
    external = stype in ("NodePort", "LoadBalancer")
    if stype != "ExternalName":
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    if external:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    if stype == "LoadBalancer":
        spec.setdefault("allocateLoadBalancerNodePorts", True)
    _check_ports(spec, stype, errs)
    if old is not None and stype != "ExternalName":
        if not spec.get("clusterIP") and not spec.get("clusterIPs") and ospec.get("clusterIP"):
            spec["clusterIP"] = ospec["clusterIP"]
            spec["clusterIPs"] = list(ospec.get("clusterIPs") or [ospec["clusterIP"]])
        if (
            ospec.get("clusterIP")
            and spec.get("clusterIP") != ospec.get("clusterIP")
            and ospec.get("type") != "ExternalName"
        ):
            errs.append(
                FieldError(
                    "spec.clusterIPs[0]",
                    "FieldValueInvalid",
                    "may not change once set",
                    spec.get("clusterIP"),
                )
            )
        lbc, olbc = spec.get("loadBalancerClass"), ospec.get("loadBalancerClass")
        if olbc and ospec.get("type") == "LoadBalancer" and stype == "LoadBalancer" and lbc != olbc:
            errs.append(FieldError("spec.loadBalancerClass", "FieldValueInvalid", "may not change once set", lbc))
    if spec.get("loadBalancerClass") and stype != "LoadBalancer":
        errs.append(
            FieldError(
                "spec.loadBalancerClass",
                "FieldValueForbidden",
                "may only be used when `type` is 'LoadBalancer'",
                spec.get("loadBalancerClass"),
            )
        )
    if errs:
        raise invalid("Service", name, errs)
    held_ips, held_ports = alloc.holdings(old) if old else (set(), set())
    new_ips: list[str] = []
    new_ports: list[int] = []
    try:
        _assign_ips(spec, stype, alloc, held_ips, new_ips, name)
        _assign_node_ports(spec, ospec, external, alloc, held_ports, new_ports, name)
    except ApiStatusError:
        alloc.ips -= set(new_ips)
        alloc.ports -= set(new_ports)
        raise
    if old is not None:
        ips_now, ports_now = alloc.holdings(svc)
        alloc.ips -= held_ips - ips_now
        alloc.ports -= held_ports - ports_now


def _check_ports(spec: JsonObj, stype: str, errs: list[FieldError]) -> None:
    ports = spec.get("ports")
    if ports is None:
        ports = []
    if not isinstance(ports, list):
        errs.append(FieldError("spec.ports", "FieldValueTypeInvalid", "must be a list", ports))
        return
    if not ports and stype != "ExternalName" and spec.get("clusterIP") != "None":
        errs.append(FieldError("spec.ports", "FieldValueRequired", ""))
    seen: set[tuple[int, str]] = set()
    names: set[str] = set()
    for i, p in enumerate(ports):
        f = f"spec.ports[{i}]"
        if not isinstance(p, dict):
            errs.append(FieldError(f, "FieldValueTypeInvalid", "must be an object", p))
            continue
        port = p.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            errs.append(FieldError(f + ".port", "FieldValueInvalid", "must be between 1 and 65535, inclusive", port))
            continue
        proto = p.setdefault("protocol", "TCP")
        if proto not in ("TCP", "UDP", "SCTP"):
            errs.append(
                FieldError(f + ".protocol", "FieldValueNotSupported", 'supported values: "SCTP", "TCP", "UDP"', proto)
            )
        p.setdefault("targetPort", port)
        pname = p.get("name", "")
        if len(ports) > 1 and not pname:
            errs.append(FieldError(f + ".name", "FieldValueRequired", ""))
        if pname and pname in names:
            errs.append(FieldError(f + ".name", "FieldValueDuplicate", "", pname))
        names.add(pname)
        if (port, proto) in seen:
            errs.append(FieldError(f, "FieldValueDuplicate", "", {"port": port, "protocol": proto}))
        seen.add((port, proto))
        np = p.get("nodePort")
        if np is not None and (not isinstance(np, int) or np not in NODE_PORTS):
            errs.append(
                FieldError(
                    f + ".nodePort",
                    "FieldValueInvalid",
                    "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    np,
                )
            )


def _families(spec: JsonObj, alloc: Allocators, name: str) -> list[str]:
    fams = list(spec.get("ipFamilies") or [])
    policy = spec.get("ipFamilyPolicy") or ("SingleStack" if len(fams) < 2 else "RequireDualStack")
    spec["ipFamilyPolicy"] = policy
    if not fams:
        ip = spec.get("clusterIP")
        fams = ["IPv6" if ip and ip != "None" and ":" in ip else "IPv4"]
        if "IPv4" not in alloc.nets and fams == ["IPv4"] and "IPv6" in alloc.nets:
            fams = ["IPv6"]
    if policy in ("PreferDualStack", "RequireDualStack") and len(fams) == 1:
        other = "IPv6" if fams[0] == "IPv4" else "IPv4"
        if other in alloc.nets:
            fams.append(other)
        elif policy == "RequireDualStack":
            raise invalid(
                "Service",
                name,
                [
                    FieldError(
                        "spec.ipFamilyPolicy",
                        "FieldValueInvalid",
                        "this cluster is not configured for dual-stack services",
                        policy,
                    )
                ],
            )
    for i, f in enumerate(fams):
        if f not in ("IPv4", "IPv6"):
            raise invalid(
                "Service",
                name,
                [
                    FieldError(
                        f"spec.ipFamilies[{i}]",
                        "FieldValueNotSupported",
                        'supported values: "IPv4", "IPv6"',
                        f,
                    )
                ],
            )
        if f not in alloc.nets:
            raise invalid(
                "Service",
                name,
                [FieldError(f"spec.ipFamilies[{i}]", "FieldValueInvalid", "not configured on this cluster", f)],
            )
    spec["ipFamilies"] = fams
    return fams


def _assign_ips(spec: JsonObj, stype: str, alloc: Allocators, held: set[str], new: list[str], name: str) -> None:
    if stype == "ExternalName":
        for k in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            spec.pop(k, None)
        return
    want = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    if want == ["None"]:
        spec["clusterIP"], spec["clusterIPs"] = "None", ["None"]
        _families(spec, alloc, name)
        return
    fams = _families(spec, alloc, name)
    out: list[str] = []
    for i, fam in enumerate(fams):
        ip = want[i] if i < len(want) else ""
        if ip:
            field = f"spec.clusterIPs[{i}]"
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                raise invalid(
                    "Service",
                    name,
                    [FieldError(field, "FieldValueInvalid", "must be a valid IP address", ip)],
                ) from None
            net = alloc.nets.get(fam)
            if net is None or addr not in net or ("IPv4" if addr.version == 4 else "IPv6") != fam:
                raise invalid(
                    "Service",
                    name,
                    [
                        FieldError(
                            field,
                            "FieldValueInvalid",
                            f"the provided IP ({ip}) is not in the valid range. The range of valid IPs is {net}",
                            ip,
                        )
                    ],
                )
            ip = str(addr)
            if ip in alloc.ips and ip not in held:
                raise invalid(
                    "Service",
                    name,
                    [
                        FieldError(
                            field,
                            "FieldValueInvalid",
                            f"failed to allocate IP {ip}: provided IP is already allocated",
                            ip,
                        )
                    ],
                )
            if ip not in held:
                alloc.ips.add(ip)
                new.append(ip)
        else:
            ip = alloc.alloc_ip(fam)
            new.append(ip)
        out.append(ip)
    spec["clusterIP"], spec["clusterIPs"] = out[0], out


def _assign_node_ports(
    spec: JsonObj,
    ospec: JsonObj,
    external: bool,
    alloc: Allocators,
    held: set[int],
    new: list[int],
    name: str,
) -> None:
    ports = spec.get("ports") or []
    wants = external and not (spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is False)
    old_np = {
        (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
        for p in ospec.get("ports") or []
        if isinstance(p, dict)
    }
    for i, p in enumerate(ports):
        if not external:
            if p.get("nodePort") and p.get("nodePort") not in held:
                raise invalid(
                    "Service",
                    name,
                    [
                        FieldError(
                            f"spec.ports[{i}].nodePort",
                            "FieldValueForbidden",
                            "may not be used when `type` is 'ClusterIP'",
                            p.get("nodePort"),
                        )
                    ],
                )
            p.pop("nodePort", None)
            continue
        np = p.get("nodePort") or old_np.get((p.get("port"), p.get("protocol")))
        if np:
            if np in alloc.ports and np not in held and np not in new:
                raise invalid(
                    "Service",
                    name,
                    [
                        FieldError(
                            f"spec.ports[{i}].nodePort",
                            "FieldValueInvalid",
                            "provided port is already allocated",
                            np,
                        )
                    ],
                )
            if np not in held:
                alloc.ports.add(np)
                new.append(np)
            p["nodePort"] = np
        elif wants:
            p["nodePort"] = alloc.alloc_port()
            new.append(p["nodePort"])
    local_lb = spec.get("type") == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"
    if local_lb:
        hc = spec.get("healthCheckNodePort") or ospec.get("healthCheckNodePort")
        if not hc:
            hc = alloc.alloc_port()
            new.append(hc)
        elif hc not in held and hc not in new:
            alloc.ports.add(hc)
            new.append(hc)
        spec["healthCheckNodePort"] = hc
    else:
        spec.pop("healthCheckNodePort", None)
