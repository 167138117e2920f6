"""The one loader: every lbspeaker config object in, one validated ``FullConfig`` out.

The controller, the L2 speaker, BGP mode, the admission webhook and ``lbctl config validate``
all call ``load``; none of them parses a kind on its own. Invalid objects are left out of the
result and reported as ``ConfigError`` values naming the object and the field path; what a
component keeps in force instead is the job of ``lbspeaker.core.lastgood``.

Kinds: IPAddressPool, L2Advertisement, BGPPeer, BGPAdvertisement, BFDProfile, Community, plus
the Namespaces (labels for serviceAllocation.namespaceSelectors) and the Secrets BGPPeers
reference for their MD5 password.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lbspeaker.core.bgp.config import BGPConfig, SecretRef, parse_bgp
from lbspeaker.core.config import L2_KIND, POOL_KIND, Config, Pool, parse_config
from lbspeaker.core.errors import ConfigError

__all__ = [
    "BGP_KINDS",
    "CONFIG_KINDS",
    "FullConfig",
    "Loaded",
    "ObjKey",
    "RawConfig",
    "error_key",
    "load",
    "object_key",
    "validate_change",
]

JSON = Mapping[str, Any]
ObjKey = tuple[str, str]
"""(kind, metadata.name) of one config object; all of them live in the lbspeaker namespace."""

BGP_KINDS = ("BGPPeer", "BGPAdvertisement", "BFDProfile", "Community")
CONFIG_KINDS = (POOL_KIND, L2_KIND, *BGP_KINDS)


def object_key(obj: JSON) -> ObjKey:
    """The (kind, name) of a raw config object."""
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, Mapping) else None
    return str(obj.get("kind") or ""), str(name or "")


def error_key(err: ConfigError) -> ObjKey:
    """The (kind, name) an error is about (BGP errors name objects as ``ns/name``)."""
    return err.kind, err.name.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RawConfig:
    """The raw API objects a config is made of, as the informers (or files) hold them."""

    objects: Mapping[ObjKey, JSON] = field(default_factory=dict)
    """Every config object by (kind, name); each carries its ``kind``."""
    namespaces: tuple[JSON, ...] = ()
    secrets: Mapping[tuple[str, str], JSON] = field(default_factory=dict)
    """Secrets by (namespace, name)."""

    @classmethod
    def of(
        cls,
        by_kind: Mapping[str, Iterable[JSON]],
        *,
        namespaces: Iterable[JSON] = (),
        secrets: Iterable[JSON] = (),
    ) -> RawConfig:
        """From lists of objects per kind (list items need not carry ``kind``); unknown kinds
        are ignored, a later duplicate name wins."""
        objs = {
            (kind, object_key(o)[1]): o for kind, items in by_kind.items() if kind in CONFIG_KINDS for o in items
        }
        sec: dict[tuple[str, str], JSON] = {}
        for s in secrets:
            meta = s.get("metadata") or {}
            sec[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))] = s
        return cls(objs, tuple(namespaces), sec)

    @classmethod
    def from_documents(cls, docs: Iterable[JSON]) -> RawConfig:
        """From manifests (each document carries its ``kind``)."""
        docs = list(docs)
        by_kind: dict[str, list[JSON]] = {}
        for d in docs:
            by_kind.setdefault(str(d.get("kind") or ""), []).append(d)
        return cls.of(by_kind, namespaces=by_kind.get("Namespace", ()), secrets=by_kind.get("Secret", ()))

    def with_objects(self, objects: Mapping[ObjKey, JSON]) -> RawConfig:
        """The same namespaces and secrets with another set of config objects."""
        return RawConfig(dict(objects), self.namespaces, self.secrets)

    def of_kind(self, kind: str) -> list[JSON]:
        """The objects of one kind, by name."""
        return [o for (k, _), o in sorted(self.objects.items()) if k == kind]


@dataclass(frozen=True)
class FullConfig:
    """Everything the controller and the speakers act on, in both modes."""

    l2: Config = field(default_factory=Config)
    bgp: BGPConfig = field(default_factory=BGPConfig)
    passwords: Mapping[SecretRef, str] = field(default_factory=dict)
    """MD5 passwords of the Secrets that BGPPeers reference and that exist."""

    @property
    def pools(self) -> Mapping[str, Pool]:
        """The valid IPAddressPools by name."""
        return self.l2.pools


@dataclass(frozen=True)
class Loaded:
    """A config plus the errors of the objects left out and the warnings of the ones kept."""

    config: FullConfig
    errors: tuple[ConfigError, ...] = ()
    warnings: tuple[ConfigError, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every object was valid."""
        return not self.errors

    def error_keys(self) -> frozenset[ObjKey]:
        """The objects that were left out."""
        return frozenset(error_key(e) for e in self.errors)


def _passwords(
    bgp: BGPConfig, secrets: Mapping[tuple[str, str], JSON]
) -> tuple[dict[SecretRef, str], list[ConfigError]]:
    out: dict[SecretRef, str] = {}
    warnings: list[ConfigError] = []
    for peer in bgp.peers.values():
        ref = peer.password_secret
        if ref is None:
            continue
        obj = secrets.get((ref.namespace, ref.name))
        if obj is None:
            continue  # routes.sessions_for_node reports the peer as skipped
        data = obj.get("data") or {}
        value = data.get("password") if isinstance(data, Mapping) else None
        if not value:
            continue
        try:
            out[ref] = base64.b64decode(str(value), validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            warnings.append(
                ConfigError("BGPPeer", peer.name, "spec.passwordSecret",
                            f"Secret '{ref.namespace}/{ref.name}' key 'password' is not valid base64 UTF-8")
            )
    return out, warnings


def load(raw: RawConfig) -> Loaded:
    """Parse every config object of raw into one FullConfig; invalid objects are left out."""
    l2 = parse_config(
        pools=raw.of_kind(POOL_KIND),
        l2_advertisements=raw.of_kind(L2_KIND),
        namespaces=raw.namespaces,
    )
    bgp = parse_bgp(
        peers=raw.of_kind("BGPPeer"),
        advertisements=raw.of_kind("BGPAdvertisement"),
        bfd_profiles=raw.of_kind("BFDProfile"),
        communities=raw.of_kind("Community"),
        pools=l2.config.pools,
    )
    passwords, pw_warnings = _passwords(bgp.config, raw.secrets)
    return Loaded(
        FullConfig(l2.config, bgp.config, passwords),
        errors=(*l2.errors, *bgp.errors),
        warnings=(*l2.warnings, *pw_warnings),
    )


def invalidates(changed: ObjKey, err: ConfigError) -> ConfigError:
    """The error charged to the changed object when its edit makes another object invalid."""
    kind, name = changed
    cause = f"the edit would make {err.kind} '{err.name}' invalid: {err.field}: {err.cause}"
    return ConfigError(kind, name, "spec", cause)


def validate_change(
    raw: RawConfig, obj: JSON, *, kind: str = "", operation: str = "UPDATE"
) -> tuple[ConfigError, ...]:
    """Why applying obj (CREATE/UPDATE) to the live objects of raw must be refused; () if it may.

    The object's own errors come first, then one error for each other object the change would
    make invalid. DELETE is always allowed: a deleted object is really deleted.
    """
    if operation == "DELETE":
        return ()
    key = (kind or object_key(obj)[0], object_key(obj)[1])
    before = load(raw).error_keys()
    after = load(raw.with_objects({**raw.objects, key: obj}))
    own = tuple(e for e in after.errors if error_key(e) == key)
    others = tuple(invalidates(key, e) for e in after.errors if error_key(e) not in before | {key})
    return own + others
