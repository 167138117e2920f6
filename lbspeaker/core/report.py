"""What lbctl shows: pool and service rows, and the explanation of why a Service has no IP.

Pure: every input is an already-parsed value; the explanation replays the controller's own
allocator and the speakers' own L2 election on the same inputs, so it cannot drift from what
the daemons decide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lbspeaker.core.allocator import Allocator, PoolUsage
from lbspeaker.core.announce import L2Reason, l2_assignments
from lbspeaker.core.config import Config
from lbspeaker.core.errors import ConfigError
from lbspeaker.core.node import NodeInfo, ServiceEndpoints
from lbspeaker.core.service import ANN_ALLOCATED_FROM, ANN_SHARED, ServiceRef


def fmt_count(n: int) -> str:
    """A count that may be astronomically large (IPv6), readable."""
    if n >= 2**32 and n & (n - 1) == 0:
        return f"2^{n.bit_length() - 1}"
    if n >= 10**9:
        return f"{n:.2e}"
    return str(n)


@dataclass(frozen=True)
class PoolRow:
    """One line of ``lbctl pools list``."""

    name: str
    addresses: tuple[str, ...]
    v4: PoolUsage | None
    v6: PoolUsage | None
    auto_assign: bool
    priority: int | None
    services: int


@dataclass(frozen=True)
class ServiceRow:
    """One line of ``lbctl services list``."""

    key: str
    ips: tuple[str, ...]
    pool: str
    sharing_key: str
    node: str
    interfaces: tuple[str, ...]
    since: str


def adopt_all(config: Config, services: Sequence[ServiceRef], *, skip: str | None = None) -> Allocator:
    """An allocator holding what every Service's status says it holds (as the controller does at start)."""
    alloc = Allocator(config)
    for svc in services:
        if svc.key != skip and svc.is_load_balancer and svc.ingress_ips:
            alloc.adopt(svc)
    return alloc


def pool_rows(config: Config, services: Sequence[ServiceRef], raw_addresses: Mapping[str, Sequence[str]]
              ) -> list[PoolRow]:
    """Rows for every pool, with usage from the Services' current status."""
    alloc = adopt_all(config, services)
    usage = alloc.usage()
    per_pool: dict[str, set[str]] = {}
    for a in alloc.assignments():
        for ip in a.ips:
            pool = alloc.pool_of(ip)
            if pool is not None:
                per_pool.setdefault(pool.name, set()).add(a.key)
    return [
        PoolRow(p.name, tuple(raw_addresses.get(p.name, ())), usage.get(p.name, {}).get(4),
                usage.get(p.name, {}).get(6), p.auto_assign, p.priority, len(per_pool.get(p.name, ())))
        for p in config.ordered_pools()
    ]


def service_rows(config: Config, services: Sequence[ServiceRef], l2: Mapping[str, Mapping[str, object]]
                 ) -> list[ServiceRow]:
    """Rows for every LoadBalancer Service; l2 maps service key to its ServiceL2Status status."""
    rows = []
    for svc in sorted(services, key=lambda s: s.key):
        if not svc.is_load_balancer:
            continue
        pool = svc.annotation(ANN_ALLOCATED_FROM) or ""
        if not pool and svc.ingress_ips:
            p = config.pool_of(svc.ingress_ips[0])
            pool = p.name if p else ""
        st = l2.get(svc.key) or {}
        ifaces = st.get("interfaces")
        rows.append(ServiceRow(
            svc.key, tuple(str(i) for i in svc.ingress_ips), pool, svc.annotation(ANN_SHARED) or "",
            str(st.get("node") or ""), tuple(str(i) for i in ifaces) if isinstance(ifaces, list) else (),
            str(st.get("since") or "")))
    return rows


@dataclass(frozen=True)
class Finding:
    """One line of an explanation: ok, problem or info."""

    level: str
    text: str


def explain(target: ServiceRef, *, services: Sequence[ServiceRef], config: Config,
            config_errors: Sequence[ConfigError], nodes: Mapping[str, NodeInfo],
            endpoints: Mapping[str, ServiceEndpoints], l2_status: Mapping[str, object] | None,
            warnings: Sequence[str], load_balancer_class: str | None = None,
            ignored_edits: Sequence[ConfigError] = ()) -> list[Finding]:
    """Why target has (or has no) external IP and who announces it, step by step.

    config_errors: objects left out (no valid version); ignored_edits: invalid edits whose
    object's last good version is in force (config holds that version)."""
    out: list[Finding] = []
    if not target.is_load_balancer:
        return [Finding("problem", f"service '{target.key}' is type {target.type}: only type LoadBalancer "
                                   "gets an external IP")]
    if target.load_balancer_class != load_balancer_class:
        handled = repr(load_balancer_class) if load_balancer_class else "only services without one"
        return [Finding("problem", f"service '{target.key}' has loadBalancerClass "
                                   f"'{target.load_balancer_class}': lbspeaker handles {handled}")]
    out.extend(Finding("problem", f"invalid edit ignored; last good config in force: {e}") for e in ignored_edits)
    out.extend(Finding("problem", f"invalid config ignored (object left out): {e}") for e in config_errors)
    if not config.pools:
        out.append(Finding("problem", "no valid IPAddressPool exists: create one (see config/samples/lab.yaml)"))
        return out
    alloc = adopt_all(config, services, skip=target.key)
    outcome = alloc.assign(target, may_replace=False)
    if target.ingress_ips:
        ips = ", ".join(map(str, target.ingress_ips))
        if outcome.ok:
            out.append(Finding("ok", f"holds {ips} from pool '{outcome.pool}'"))
        else:
            out.append(Finding("problem", f"holds {ips} but the allocator would not keep it: {outcome.message}"))
    elif outcome.ok:
        out.append(Finding("problem", f"the allocator would assign {', '.join(map(str, outcome.ips))} from pool "
                                      f"'{outcome.pool}' but the status has no IP: is the controller running? "
                                      "(its logs; kubectl get lease -n lbspeaker-system)"))
    else:
        out.append(Finding("problem", f"no IP can be assigned: {outcome.reason.value}: {outcome.message}"))
    for w in warnings:
        out.append(Finding("info", f"event: {w}"))
    if not target.ingress_ips:
        return out
    table = l2_assignments(services=[*[s for s in services if s.key != target.key], target], nodes=nodes,
                           config=config, endpoints=endpoints, alive=None, load_balancer_class=load_balancer_class)
    for ip in target.ingress_ips:
        a = table.get(ip)
        if a is None or a.reason is L2Reason.NOT_IN_POOL:
            out.append(Finding("problem", f"{ip}: lies in no pool: it is not announced"))
        elif a.reason is L2Reason.NO_ADVERTISEMENT:
            pool = config.pool_of(ip)
            out.append(Finding("problem", f"{ip}: pool '{pool.name if pool else '?'}' is selected by no "
                                          "L2Advertisement matching this service: nobody answers ARP/NDP for it"))
        elif a.reason is L2Reason.NO_ENDPOINTS:
            out.append(Finding("problem", f"{ip}: externalTrafficPolicy Local and no ready endpoint on an "
                                          "eligible node: not announced"))
        elif a.reason is L2Reason.NO_ELIGIBLE_NODE:
            out.append(Finding("problem", f"{ip}: no eligible node (Ready, network available, not excluded, "
                                          "matching the L2Advertisement's nodeSelectors)"))
        else:
            out.append(Finding("ok", f"{ip}: elected node '{a.node}' (ranking {', '.join(a.ranking)}; "
                                     "a dead speaker is skipped within a fraction of a second)"))
    if l2_status and l2_status.get("node"):
        ifaces = l2_status.get("interfaces")
        ifs = ", ".join(str(i) for i in ifaces) if isinstance(ifaces, list) else "?"
        out.append(Finding("ok", f"node '{l2_status['node']}' reports it answers for it on {ifs} since "
                                 f"{l2_status.get('since')}"))
    else:
        out.append(Finding("info", "no speaker has reported announcing it yet (ServiceL2Status)"))
    return out
