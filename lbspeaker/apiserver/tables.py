"""Server-side printing: ``meta.k8s.io/v1 Table`` answers for ``Accept: ...;as=Table``.

kubectl prints only what the server puts in the Table, so the columns mirror the real printers
(``kubectl get svc`` → NAME TYPE CLUSTER-IP EXTERNAL-IP PORT(S) AGE). Custom resources use their
additionalPrinterColumns (a JSONPath subset: ``.a.b``, ``[n]``, ``[*]``, ``[?(@.k=="v")]``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from lbspeaker.apiserver.kinds import Column, Resource

JsonObj = dict[str, Any]
Row = list[Any]


def human_duration(seconds: float) -> str:
    """Kubernetes' HumanDuration (``45s``, ``5m30s``, ``3h``, ``12d``)."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m" if s % 60 == 0 else f"{m}m{s % 60}s"
    if m < 180:
        return f"{m}m"
    h = s // 3600
    if h < 8:
        return f"{h}h" if m % 60 == 0 else f"{h}h{m % 60}m"
    if h < 48:
        return f"{h}h"
    if h < 24 * 8:
        return f"{h // 24}d" if h % 24 == 0 else f"{h // 24}d{h % 24}h"
    if h < 24 * 365 * 2:
        return f"{h // 24}d"
    if h < 24 * 365 * 8:
        dy = (h // 24) % 365
        return f"{h // 24 // 365}y" if dy == 0 else f"{h // 24 // 365}y{dy}d"
    return f"{h // 24 // 365}y"


def age(ts: Any) -> str:
    """Age of an RFC 3339 timestamp, or ``<unknown>``."""
    if not ts:
        return "<unknown>"
    try:
        t = datetime.fromisoformat(str(ts).replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    return human_duration((datetime.now(UTC) - t).total_seconds())


def _meta(o: JsonObj) -> JsonObj:
    m = o.get("metadata")
    return m if isinstance(m, dict) else {}


def _svc_row(o: JsonObj) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    stype = spec.get("type", "ClusterIP")
    ext: list[str] = [
        str(x.get("ip") or x.get("hostname"))
        for x in (st.get("loadBalancer") or {}).get("ingress") or []
        if isinstance(x, dict) and (x.get("ip") or x.get("hostname"))
    ]
    if stype == "ExternalName":
        external = spec.get("externalName", "<none>")
    else:
        allext = ext + list(spec.get("externalIPs") or [])
        if allext:
            external = ",".join(allext)
        elif stype == "LoadBalancer":
            external = "<pending>"
        else:
            external = "<none>"
    ports = []
    for p in spec.get("ports") or []:
        s = str(p.get("port"))
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        ports.append(f"{s}/{p.get('protocol', 'TCP')}")
    sel = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [
        _meta(o).get("name"),
        stype,
        spec.get("clusterIP") or "<none>",
        external,
        ",".join(ports) or "<none>",
        age(_meta(o).get("creationTimestamp")),
        sel,
    ]


def _node_row(o: JsonObj) -> Row:
    st, spec = o.get("status") or {}, o.get("spec") or {}
    ready = next((c.get("status") for c in st.get("conditions") or [] if c.get("type") == "Ready"), None)
    status = "Ready" if ready == "True" else "NotReady" if ready == "False" else "Unknown"
    if spec.get("unschedulable"):
        status += ",SchedulingDisabled"
    labels = _meta(o).get("labels") or {}
    roles = sorted(
        k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/") and k.split("/", 1)[1]
    )
    info = st.get("nodeInfo") or {}
    addrs = st.get("addresses") or []
    ip = next((a.get("address") for a in addrs if a.get("type") == "InternalIP"), "<none>")
    eip = next((a.get("address") for a in addrs if a.get("type") == "ExternalIP"), "<none>")
    return [
        _meta(o).get("name"),
        status,
        ",".join(roles) or "<none>",
        age(_meta(o).get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        ip,
        eip,
        info.get("osImage", "<unknown>"),
        info.get("kernelVersion", "<unknown>"),
        info.get("containerRuntimeVersion", "<unknown>"),
    ]


def _pod_row(o: JsonObj) -> Row:
    spec, st = o.get("spec") or {}, o.get("status") or {}
    cs = st.get("containerStatuses") or []
    ready = sum(1 for c in cs if c.get("ready"))
    restarts = sum(int(c.get("restartCount", 0)) for c in cs)
    phase = st.get("phase", "Unknown")
    if _meta(o).get("deletionTimestamp"):
        phase = "Terminating"
    return [
        _meta(o).get("name"),
        f"{ready}/{len(spec.get('containers') or [])}",
        phase,
        restarts,
        age(_meta(o).get("creationTimestamp")),
        st.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _slice_row(o: JsonObj) -> Row:
    ports = ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>"
    addrs = [a for e in o.get("endpoints") or [] for a in e.get("addresses") or []]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [
        _meta(o).get("name"),
        o.get("addressType"),
        ports,
        shown or "<unset>",
        age(_meta(o).get("creationTimestamp")),
    ]


def _c(name: str, typ: str = "string", *, priority: int = 0, fmt: str = "") -> JsonObj:
    return {"name": name, "type": typ, "format": fmt, "description": "", "priority": priority}


_AGE = _c("Age")
_NAME = _c("Name", fmt="name")
PRINTERS: dict[tuple[str, str], tuple[list[JsonObj], Callable[[JsonObj], Row]]] = {
    ("", "Service"): (
        [
            _NAME,
            _c("Type"),
            _c("Cluster-IP"),
            _c("External-IP"),
            _c("Port(s)"),
            _AGE,
            _c("Selector", priority=1),
        ],
        _svc_row,
    ),
    ("", "Node"): (
        [
            _NAME,
            _c("Status"),
            _c("Roles"),
            _AGE,
            _c("Version"),
            _c("Internal-IP", priority=1),
            _c("External-IP", priority=1),
            _c("OS-Image", priority=1),
            _c("Kernel-Version", priority=1),
            _c("Container-Runtime", priority=1),
        ],
        _node_row,
    ),
    ("", "Pod"): (
        [
            _NAME,
            _c("Ready"),
            _c("Status"),
            _c("Restarts", "integer"),
            _AGE,
            _c("IP", priority=1),
            _c("Node", priority=1),
            _c("Nominated Node", priority=1),
            _c("Readiness Gates", priority=1),
        ],
        _pod_row,
    ),
    ("", "Namespace"): (
        [_NAME, _c("Status"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            (o.get("status") or {}).get("phase", ""),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    ("discovery.k8s.io", "EndpointSlice"): (
        [_NAME, _c("AddressType"), _c("Ports"), _c("Endpoints"), _AGE],
        _slice_row,
    ),
    ("", "ConfigMap"): (
        [_NAME, _c("Data", "integer"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    ("", "Secret"): (
        [_NAME, _c("Type"), _c("Data", "integer"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    ("coordination.k8s.io", "Lease"): (
        [_NAME, _c("Holder"), _AGE],
        lambda o: [
            _meta(o).get("name"),
            (o.get("spec") or {}).get("holderIdentity", ""),
            age(_meta(o).get("creationTimestamp")),
        ],
    ),
    ("", "Event"): (
        [_c("Last Seen"), _c("Type"), _c("Reason"), _c("Object"), _c("Message")],
        lambda o: [
            age(o.get("lastTimestamp") or o.get("eventTime") or _meta(o).get("creationTimestamp")),
            o.get("type", ""),
            o.get("reason", ""),
            f"{(o.get('involvedObject') or {}).get('kind', '').lower()}/"
            f"{(o.get('involvedObject') or {}).get('name', '')}",
            o.get("message", ""),
        ],
    ),
    ("apiextensions.k8s.io", "CustomResourceDefinition"): (
        [_NAME, _c("Created At", "date")],
        lambda o: [_meta(o).get("name"), _meta(o).get("creationTimestamp")],
    ),
}


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate the JSONPath subset used by printer columns; returns all matches."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    toks = re.findall(r"\.([^.\[\]]+)|\[(\*|-?\d+|\?\(@\.[^)]*\))\]", path)
    cur = [obj]
    for field, idx in toks:
        nxt: list[Any] = []
        for c in cur:
            if field:
                if isinstance(c, dict) and field in c:
                    nxt.append(c[field])
            elif idx == "*":
                nxt.extend(c if isinstance(c, list) else (c.values() if isinstance(c, dict) else []))
            elif idx.startswith("?"):
                m = re.fullmatch(r"\?\(@\.([\w.-]+)\s*==\s*['\"]?([^'\"]*)['\"]?\)", idx)
                if m and isinstance(c, list):
                    for x in c:
                        got = jsonpath(x, "." + m.group(1))
                        if got and _text(got[0]) == m.group(2):
                            nxt.append(x)
            elif isinstance(c, list):
                i = int(idx)
                if -len(c) <= i < len(c):
                    nxt.append(c[i])
        cur = nxt
    return cur


def _text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _cell(values: list[Any], col: Column) -> Any:
    if not values:
        return None
    v = values[0] if len(values) == 1 else values
    if col.type == "date" and isinstance(v, str):
        return age(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return v


def _custom(res: Resource) -> tuple[list[JsonObj], Callable[[JsonObj], Row]]:
    cols = res.columns
    if cols is None:
        return [_NAME, _AGE], lambda o: [_meta(o).get("name"), age(_meta(o).get("creationTimestamp"))]
    defs = [_NAME] + [
        {
            "name": c.name,
            "type": "string" if c.type == "date" else c.type,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        }
        for c in cols
    ]
    return defs, lambda o: [_meta(o).get("name")] + [_cell(jsonpath(o, c.json_path), c) for c in cols]


def printer(res: Resource) -> tuple[list[JsonObj], Callable[[JsonObj], Row]]:
    """Column definitions and the row function for a resource."""
    if not res.builtin:
        return _custom(res)
    return PRINTERS.get(
        (res.group, res.kind),
        ([_NAME, _AGE], lambda o: [_meta(o).get("name"), age(_meta(o).get("creationTimestamp"))]),
    )


def _row_object(o: JsonObj, include: str, res: Resource) -> JsonObj | None:
    if include == "None":
        return None
    if include == "Object":
        return o
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(o)}


def table(
    res: Resource,
    objs: list[JsonObj],
    *,
    rv: str = "",
    include: str = "PartialObjectMetadata",
    headers: bool = True,
    cont: str = "",
    remaining: int | None = None,
) -> JsonObj:
    """A Table of these objects."""
    defs, row = printer(res)
    rows = []
    for o in objs:
        r: JsonObj = {"cells": row(o)}
        ro = _row_object(o, include, res)
        if ro is not None:
            r["object"] = ro
        rows.append(r)
    meta: JsonObj = {"resourceVersion": rv}
    if cont:
        meta["continue"] = cont
    if remaining is not None:
        meta["remainingItemCount"] = remaining
    out: JsonObj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    if headers:
        out["columnDefinitions"] = defs
    out["rows"] = rows
    return out
