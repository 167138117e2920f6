"""``lbctl pools``, ``lbctl services`` and ``lbctl explain``: what lbspeaker did, and why."""

from __future__ import annotations

from typing import Any

import click

from lbspeaker.cli.context import SPEAKER_NS, connect, kubeconfig_option, load_config, output_option
from lbspeaker.cli.format import render
from lbspeaker.core.errors import ApiError, NotFoundError
from lbspeaker.core.node import endpoints_from_slices, parse_node
from lbspeaker.core.report import explain, fmt_count, pool_rows, service_rows
from lbspeaker.core.service import parse_service
from lbspeaker.k8s.client import ENDPOINTSLICES, EVENTS, JSON, NODES, SERVICE_L2_STATUSES, SERVICES, Kube


def _usage(u: Any) -> str:
    return f"{fmt_count(u.assigned)}/{fmt_count(u.total)}" if u is not None else "-"


def _l2_statuses(kube: Kube) -> dict[str, dict[str, Any]]:
    try:
        items, _ = kube.list(SERVICE_L2_STATUSES, SPEAKER_NS)
    except ApiError:
        return {}
    out = {}
    for it in items:
        st = it.get("status") or {}
        if st.get("serviceName"):
            out[f"{st.get('serviceNamespace')}/{st['serviceName']}"] = st
    return out


@click.group()
def pools() -> None:
    """Address pools."""


@pools.command("list")
@kubeconfig_option
@output_option
def pools_list(kubeconfig: str | None, output: str) -> None:
    """Pools with their addresses and IPv4/IPv6 usage."""
    kube = connect(kubeconfig)
    res = load_config(kube)
    svcs = [parse_service(o) for o in kube.list(SERVICES)[0]]
    addrs = {str((p.get("metadata") or {}).get("name")): [str(a) for a in (p.get("spec") or {}).get("addresses") or []]
             for p in res.pools_raw}
    rows = pool_rows(res.config, svcs, addrs)
    data = [{"name": r.name, "addresses": list(r.addresses), "autoAssign": r.auto_assign, "priority": r.priority,
             "services": r.services,
             "ipv4": None if r.v4 is None else {"assigned": r.v4.assigned, "total": str(r.v4.total)},
             "ipv6": None if r.v6 is None else {"assigned": r.v6.assigned, "total": str(r.v6.total)}} for r in rows]
    headers = ["NAME", "ADDRESSES", "IPV4 USED/TOTAL", "IPV6 USED/TOTAL", "AUTO-ASSIGN", "PRIORITY", "SERVICES"]
    table_rows = [[r.name, ",".join(r.addresses), _usage(r.v4), _usage(r.v6), str(r.auto_assign).lower(),
                   "-" if r.priority is None else str(r.priority), str(r.services)] for r in rows]
    click.echo(render(data, output, headers, table_rows))
    for err in res.ignored:
        click.echo(f"warning: invalid edit ignored; last good config in force: {err}", err=True)
    for err in res.left_out:
        click.echo(f"warning: {err}", err=True)


@click.group()
def services() -> None:
    """LoadBalancer Services."""


@services.command("list")
@kubeconfig_option
@output_option
def services_list(kubeconfig: str | None, output: str) -> None:
    """LoadBalancer Services: IPs, pool, sharing key, announcing node."""
    kube = connect(kubeconfig)
    res = load_config(kube)
    svcs = [parse_service(o) for o in kube.list(SERVICES)[0]]
    rows = service_rows(res.config, svcs, _l2_statuses(kube))
    data = [{"service": r.key, "ips": list(r.ips), "pool": r.pool, "sharingKey": r.sharing_key,
             "l2": {"node": r.node, "interfaces": list(r.interfaces), "since": r.since} if r.node else None}
            for r in rows]
    headers = ["SERVICE", "EXTERNAL-IPS", "POOL", "SHARING-KEY", "ANNOUNCED-BY"]
    if output == "wide":
        headers += ["INTERFACES", "SINCE"]
    table_rows = []
    for r in rows:
        row = [r.key, ",".join(r.ips) or "<pending>", r.pool or "-", r.sharing_key or "-", r.node or "-"]
        if output == "wide":
            row += [",".join(r.interfaces) or "-", r.since or "-"]
        table_rows.append(row)
    click.echo(render(data, output, headers, table_rows))


def _warnings(kube: Kube, svc: JSON) -> list[str]:
    meta = svc.get("metadata") or {}
    try:
        evs, _ = kube.list(EVENTS, meta.get("namespace"),
                           field_selector=f"involvedObject.name={meta.get('name')}")
    except ApiError:
        return []
    evs.sort(key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))
    return [f"{e.get('reason')}: {e.get('message')}" for e in evs[-5:] if e.get("type") == "Warning"]


@click.command("explain")
@click.argument("service")
@kubeconfig_option
def explain_cmd(service: str, kubeconfig: str | None) -> None:
    """Why a Service has (or has no) external IP, and who announces it: lbctl explain NS/NAME."""
    ns, _, name = service.rpartition("/")
    ns = ns or "default"
    kube = connect(kubeconfig)
    try:
        raw = kube.get(SERVICES, name, ns)
    except NotFoundError as err:
        raise click.ClickException(f"service '{ns}/{name}' not found") from err
    res = load_config(kube)
    svcs = [parse_service(o) for o in kube.list(SERVICES)[0]]
    nodes = {n.name: n for n in (parse_node(o) for o in kube.list(NODES)[0])}
    endpoints = endpoints_from_slices(kube.list(kube.served(ENDPOINTSLICES))[0])
    findings = explain(parse_service(raw), services=svcs, config=res.config, config_errors=res.left_out,
                       ignored_edits=res.ignored,
                       nodes=nodes, endpoints=endpoints, l2_status=_l2_statuses(kube).get(f"{ns}/{name}"),
                       warnings=_warnings(kube, raw))
    marks = {"ok": "✔", "problem": "✘", "info": "·"}
    click.echo(f"service {ns}/{name}")
    for f in findings:
        click.echo(f"  {marks.get(f.level, '-')} {f.text}")
    if any(f.level == "problem" for f in findings):
        raise SystemExit(1)
