"""Decoding of Kubernetes protobuf request bodies for the few kinds kubectl creates that way.

kubectl 1.32's typed clients (``kubectl create namespace|configmap|secret|service``) send
``Content-Type: application/vnd.kubernetes.protobuf``. Answers are always JSON (kubectl accepts
them), so only request decoding is needed: the ``k8s\\x00`` envelope (runtime.Unknown) and the
wire format of Namespace, ConfigMap, Secret and Service, from the field numbers of
``k8s.io/api/core/v1/generated.proto``. Zero values are dropped like JSON ``omitempty`` (Go
marshals every non-pointer field); server-set metadata (timestamps, managedFields) is ignored.
Other kinds answer 415 as before.
"""

from __future__ import annotations

import base64
from typing import Any

from lbspeaker.apiserver.status import ApiStatusError

JsonObj = dict[str, Any]
MAGIC = b"k8s\x00"
# A schema maps field number → (json name, type, sub-schema or None, repeated).
Schema = dict[int, tuple[str, str, Any, bool]]

OWNER_REF: Schema = {
    1: ("kind", "str", None, False),
    3: ("name", "str", None, False),
    4: ("uid", "str", None, False),
    5: ("apiVersion", "str", None, False),
    6: ("controller", "bool!", None, False),
    7: ("blockOwnerDeletion", "bool!", None, False),
}
META: Schema = {
    1: ("name", "str", None, False),
    2: ("generateName", "str", None, False),
    3: ("namespace", "str", None, False),
    6: ("resourceVersion", "str", None, False),
    11: ("labels", "map", None, False),
    12: ("annotations", "map", None, False),
    13: ("ownerReferences", "msg", OWNER_REF, True),
    14: ("finalizers", "str", None, True),
}
INT_OR_STR: Schema = {
    1: ("type", "int", None, False),
    2: ("intVal", "int", None, False),
    3: ("strVal", "str", None, False),
}
SVC_PORT: Schema = {
    1: ("name", "str", None, False),
    2: ("protocol", "str", None, False),
    3: ("port", "int", None, False),
    4: ("targetPort", "ios", INT_OR_STR, False),
    5: ("nodePort", "int", None, False),
    6: ("appProtocol", "str", None, False),
}
SVC_SPEC: Schema = {
    1: ("ports", "msg", SVC_PORT, True),
    2: ("selector", "map", None, False),
    3: ("clusterIP", "str", None, False),
    4: ("type", "str", None, False),
    5: ("externalIPs", "str", None, True),
    7: ("sessionAffinity", "str", None, False),
    8: ("loadBalancerIP", "str", None, False),
    9: ("loadBalancerSourceRanges", "str", None, True),
    10: ("externalName", "str", None, False),
    11: ("externalTrafficPolicy", "str", None, False),
    12: ("healthCheckNodePort", "int", None, False),
    13: ("publishNotReadyAddresses", "bool", None, False),
    17: ("ipFamilyPolicy", "str", None, False),
    18: ("clusterIPs", "str", None, True),
    19: ("ipFamilies", "str", None, True),
    20: ("allocateLoadBalancerNodePorts", "bool!", None, False),
    21: ("loadBalancerClass", "str", None, False),
    22: ("internalTrafficPolicy", "str", None, False),
    23: ("trafficDistribution", "str", None, False),
}
KINDS: dict[str, Schema] = {
    "Namespace": {
        1: ("metadata", "msg", META, False),
        2: ("spec", "msg", {1: ("finalizers", "str", None, True)}, False),
    },
    "ConfigMap": {
        1: ("metadata", "msg", META, False),
        2: ("data", "map", None, False),
        3: ("binaryData", "mapb", None, False),
        4: ("immutable", "bool!", None, False),
    },
    "Secret": {
        1: ("metadata", "msg", META, False),
        2: ("data", "mapb", None, False),
        3: ("type", "str", None, False),
        4: ("stringData", "map", None, False),
        5: ("immutable", "bool!", None, False),
    },
    "Service": {1: ("metadata", "msg", META, False), 2: ("spec", "msg", SVC_SPEC, False)},
}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) triples of one message."""
    out: list[tuple[int, int, Any]] = []
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        val: Any
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated field")
            val, i = buf[i : i + n], i + n
        elif wt == 1:
            val, i = buf[i : i + 8], i + 8
        elif wt == 5:
            val, i = buf[i : i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        out.append((num, wt, val))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _message(buf: bytes, schema: Schema) -> JsonObj:
    out: JsonObj = {}
    for num, _wt, val in _fields(buf):
        spec = schema.get(num)
        if spec is None:
            continue
        name, typ, sub, repeated = spec
        if typ == "str":
            v: Any = bytes(val).decode()
        elif typ in ("int", "bool", "bool!"):
            v = _signed(val) if typ == "int" else bool(val)
        elif typ in ("map", "mapb"):
            entry = {n: x for n, _w, x in _fields(val)}
            raw = bytes(entry.get(2, b""))
            m = out.setdefault(name, {})
            m[bytes(entry.get(1, b"")).decode()] = raw.decode() if typ == "map" else base64.b64encode(raw).decode()
            continue
        elif typ == "ios":
            ios = _message(val, sub)
            v = ios.get("strVal", "") if ios.get("type") == 1 else ios.get("intVal", 0)
        else:
            v = _message(val, sub)
        if repeated:
            out.setdefault(name, []).append(v)
        elif typ == "bool!" or v not in ("", 0, {}):
            out[name] = v
    return out


def decode(body: bytes) -> JsonObj:
    """Decode a Kubernetes protobuf request body into its JSON form (400/415 when impossible)."""
    if not body.startswith(MAGIC):
        raise ApiStatusError(400, "the body of the request could not be decoded: missing protobuf magic")
    try:
        env = {n: v for n, _w, v in _fields(body[len(MAGIC) :])}
        tm = {n: bytes(v).decode() for n, _w, v in _fields(env.get(1, b""))}
        api_version, kind = tm.get(1, ""), tm.get(2, "")
        schema = KINDS.get(kind) if api_version == "v1" else None
        if schema is None:
            raise ApiStatusError(
                415,
                f"the body of the request was in an unknown format: protobuf for "
                f"{api_version}/{kind} is not supported by this server; send JSON",
            )
        obj = _message(bytes(env.get(2, b"")), schema)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiStatusError(400, f"the body of the request could not be decoded as protobuf: {err}") from err
    return {"apiVersion": api_version, "kind": kind, **obj}
