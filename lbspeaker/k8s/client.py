"""Thin, typed access to the Kubernetes API over the official client's transport.

Why not the generated API classes: they turn every object into model instances (slow, lossy
for custom resources) and their watch helper is weak (DESIGN.md §3). We use only the client's
configuration loading, auth and connection pool, and speak JSON dicts. This is the only
package allowed to import ``kubernetes`` (import-linter contract).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from lbspeaker.core.errors import ApiError, ConflictError, GoneError, NotFoundError
from lbspeaker.k8s.fasthttp import FastHTTP, install_fast_header_parser

log = logging.getLogger(__name__)

JSON = dict[str, Any]


@dataclass(frozen=True)
class Resource:
    """One API resource: where it lives and how it is called."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``group/version`` or ``v1`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        """The URL path of the collection, an object or a subresource."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if sub:
                base += f"/{sub}"
        return base


SERVICES = Resource("", "v1", "services", "Service")
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
SECRETS = Resource("", "v1", "secrets", "Secret")
PODS = Resource("", "v1", "pods", "Pod")
EVENTS = Resource("", "v1", "events", "Event")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False)
IPADDRESSPOOLS = Resource("lbspeaker.io", "v1beta1", "ipaddresspools", "IPAddressPool")
L2ADVERTISEMENTS = Resource("lbspeaker.io", "v1beta1", "l2advertisements", "L2Advertisement")
SERVICE_L2_STATUSES = Resource("lbspeaker.io", "v1beta1", "servicel2statuses", "ServiceL2Status")
CONFIGURATION_STATES = Resource("lbspeaker.io", "v1beta1", "configurationstates", "ConfigurationState")
BGPPEERS = Resource("lbspeaker.io", "v1beta1", "bgppeers", "BGPPeer")
BGPADVERTISEMENTS = Resource("lbspeaker.io", "v1beta1", "bgpadvertisements", "BGPAdvertisement")
BFDPROFILES = Resource("lbspeaker.io", "v1beta1", "bfdprofiles", "BFDProfile")
COMMUNITIES = Resource("lbspeaker.io", "v1beta1", "communities", "Community")
VALIDATING_WEBHOOK_CONFIGURATIONS = Resource(
    "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "ValidatingWebhookConfiguration", False
)

# Versions to fall back to, newest first, when a server does not serve a resource's version:
# Kubernetes 1.20 serves EndpointSlices only as discovery.k8s.io/v1beta1 (v1 came in 1.21).
FALLBACK_VERSIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("discovery.k8s.io", "endpointslices"): ("v1", "v1beta1"),
}

MERGE_PATCH = "application/merge-patch+json"
USER_AGENT = "lbspeaker/0.1"
# retry only where the request cannot have reached the server (connect errors, stale keep-alive)
_RETRIES = urllib3.Retry(total=2, connect=2, read=0, status=0, redirect=0, other=0)
_HOSTNAME = socket.gethostname()
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"


def _error(status: int, body: bytes, what: str) -> ApiError:
    try:
        st = json.loads(body)
        msg, reason = str(st.get("message") or ""), str(st.get("reason") or "")
    except (ValueError, AttributeError):
        msg, reason = body[:200].decode("utf-8", "replace"), ""
    text = f"{what}: {status} {reason}: {msg}".rstrip(": ")
    if status == 404:
        return NotFoundError(text, code=status, reason=reason)
    if status == 409:
        return ConflictError(text, code=status, reason=reason)
    if status == 410:
        return GoneError(text, code=status, reason=reason)
    return ApiError(text, code=status, reason=reason)


class Kube:
    """A Kubernetes API connection speaking JSON dicts."""

    def __init__(self, api_client: Any, *, timeout: float = 10.0) -> None:
        self._api = api_client
        self._timeout = timeout
        self._served: dict[Resource, Resource] = {}
        self.host: str = str(api_client.configuration.host)
        install_fast_header_parser()
        pm = getattr(getattr(api_client, "rest_client", None), "pool_manager", None)
        maxsize = getattr(api_client.configuration, "connection_pool_maxsize", None) or 32
        self._fast = FastHTTP.for_pool_manager(pm, self.host, maxsize=int(maxsize)) if pm is not None else None
        """Plain requests go here (urllib3 keeps watches and proxied setups)."""

    @classmethod
    def from_kubeconfig(cls, path: str | None = None, *, timeout: float = 10.0) -> Kube:
        """Connect using a kubeconfig file, $KUBECONFIG, or the in-cluster service account."""
        cfg = k8s_client.Configuration()
        try:
            if path or os.environ.get("KUBECONFIG") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
                k8s_config.load_kube_config(config_file=path, client_configuration=cfg)  # type: ignore[no-untyped-call]
            else:
                k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
        except Exception as err:  # the loaders raise assorted types
            raise ApiError(f"loading kubeconfig '{path or os.environ.get('KUBECONFIG', '')}': {err}") from err
        cfg.retries = False
        cfg.connection_pool_maxsize = 32  # informers hold one connection each; writers need the rest
        return cls(k8s_client.ApiClient(cfg), timeout=timeout)

    def served(self, res: Resource) -> Resource:
        """res at the newest version the server serves (FALLBACK_VERSIONS); res itself if unknown."""
        versions = FALLBACK_VERSIONS.get((res.group, res.plural))
        if not versions:
            return res
        cached = self._served.get(res)
        if cached is not None:
            return cached
        for v in versions:
            try:
                doc = self.request("GET", f"/apis/{res.group}/{v}")
            except NotFoundError:
                continue
            if any(r.get("name") == res.plural for r in doc.get("resources") or []):
                out = Resource(res.group, v, res.plural, res.kind, res.namespaced)
                self._served[res] = out
                return out
        return res

    def close(self) -> None:
        """Release the connection pool."""
        if self._fast is not None:
            self._fast.close()
        self._api.close()

    # -- raw requests ---------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = None,
        stream: bool = False,
        want_body: bool = True,
    ) -> Any:
        """Send one request; returns parsed JSON ({} unless want_body), or the raw urllib3 response when streaming."""
        target = path + ("?" + urlencode(query) if query else "")
        url = self.host + target
        headers = {"Accept": "application/json", "Content-Type": content_type, "User-Agent": USER_AGENT}
        auth = self._api.configuration.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            headers[str(auth["key"])] = str(auth["value"])
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        t = timeout or self._timeout
        what = f"{method} {path}"
        if not stream and self._fast is not None:
            try:
                status, data = self._fast.request(method, target, headers, data, timeout=t)
            except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError, ValueError) as err:
                raise ApiError(f"{what}: {err}") from err
            if status >= 300:
                raise _error(status, data, what)
            return json.loads(data) if data and want_body else {}
        to = urllib3.Timeout(connect=t[0], read=t[1]) if isinstance(t, tuple) else urllib3.Timeout(total=t)
        try:
            # straight onto the client's connection pool (TLS and client certs as configured): the
            # generated serialisation layer costs more CPU than the request itself at 10k objects
            resp = self._api.rest_client.pool_manager.request(
                method, url, body=data, headers=headers, timeout=to, preload_content=False, retries=_RETRIES)
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ApiError(f"{what}: {err}") from err
        if stream and resp.status < 300:
            return resp
        try:
            data = resp.data
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ApiError(f"{what}: reading response: {err}") from err
        finally:
            resp.release_conn()
        if resp.status >= 300:
            raise _error(resp.status, data, what)
        return json.loads(data) if data and want_body else {}

    # -- verbs ----------------------------------------------------------------------------

    def list(
        self,
        res: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[JSON], str]:
        """List objects; returns (items, collection resourceVersion)."""
        query = {}
        if label_selector:
            query["labelSelector"] = label_selector
        if field_selector:
            query["fieldSelector"] = field_selector
        data = self.request("GET", res.path(namespace=namespace), query=query, timeout=60.0)
        items = data.get("items") or []
        for it in items:  # lists omit kind/apiVersion on items
            it.setdefault("kind", res.kind)
            it.setdefault("apiVersion", res.api_version)
        return items, str((data.get("metadata") or {}).get("resourceVersion") or "")

    def get(self, res: Resource, name: str, namespace: str | None = None) -> JSON:
        """Read one object; raises NotFoundError."""
        out: JSON = self.request("GET", res.path(namespace=namespace, name=name))
        return out

    def create(self, res: Resource, body: JSON, namespace: str | None = None) -> JSON:
        """Create an object."""
        ns = namespace or (body.get("metadata") or {}).get("namespace")
        body = {"apiVersion": res.api_version, "kind": res.kind, **body}
        out: JSON = self.request("POST", res.path(namespace=ns), body=body)
        return out

    def replace(
        self,
        res: Resource,
        name: str,
        body: JSON,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
    ) -> JSON:
        """PUT an object (its metadata.resourceVersion guards against lost updates)."""
        body = {"apiVersion": res.api_version, "kind": res.kind, **body}
        out: JSON = self.request("PUT", res.path(namespace=namespace, name=name, sub=subresource), body=body)
        return out

    def patch(
        self,
        res: Resource,
        name: str,
        body: Any,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        content_type: str = MERGE_PATCH,
    ) -> JSON:
        """PATCH an object (merge-patch by default)."""
        out: JSON = self.request(
            "PATCH",
            res.path(namespace=namespace, name=name, sub=subresource),
            body=body,
            content_type=content_type,
        )
        return out

    def delete(self, res: Resource, name: str, namespace: str | None = None, *,
               resource_version: str | None = None) -> None:
        """Delete an object (only at resource_version, if given); a missing object is not an error."""
        body = {"preconditions": {"resourceVersion": resource_version}} if resource_version else None
        try:
            self.request("DELETE", res.path(namespace=namespace, name=name), body=body)
        except NotFoundError:
            pass

    def watch(
        self,
        res: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        timeout_seconds: int = 300,
        label_selector: str | None = None,
    ) -> Iterator[JSON]:
        """Stream watch events (dicts with type/object) from resource_version; raises GoneError on 410."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            query["labelSelector"] = label_selector
        resp = self.request(
            "GET",
            res.path(namespace=namespace),
            query=query,
            timeout=(5.0, timeout_seconds + 15.0),
            stream=True,
        )
        buf = b""
        try:
            for chunk in resp.stream(65536, decode_content=True):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if not line.strip():
                        continue
                    ev = json.loads(line)
                    if ev.get("type") == "ERROR":
                        st = ev.get("object") or {}
                        code = int(st.get("code") or 0)
                        raise _error(code or 500, json.dumps(st).encode(), f"watch {res.plural}")
                    yield ev
        except (urllib3.exceptions.HTTPError, OSError) as err:
            raise ApiError(f"watch {res.plural}: {err}") from err
        finally:
            resp.release_conn()

    # -- helpers --------------------------------------------------------------------------

    def event(
        self, obj: JSON, *, reason: str, message: str, type: str = "Normal", component: str = "lbspeaker"
    ) -> None:
        """Record a core/v1 Event about obj; failures are logged, never raised."""
        meta = obj.get("metadata") or {}
        ns = meta.get("namespace") or "default"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": EVENTS.api_version,
            "kind": EVENTS.kind,
            "metadata": {"generateName": f"{meta.get('name', 'obj')}.", "namespace": ns},
            "involvedObject": {
                "kind": obj.get("kind"),
                "apiVersion": obj.get("apiVersion"),
                "name": meta.get("name"),
                "namespace": meta.get("namespace"),
                "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "reason": reason,
            "message": message,
            "type": type,
            "source": {"component": component},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": _HOSTNAME,
        }
        try:
            self.request("POST", EVENTS.path(namespace=ns), body=body, want_body=False)  # nobody reads the reply
        except ApiError as err:
            log.warning("event_failed reason=%s object=%s/%s err=%s", reason, ns, meta.get("name"), err)


KNOWN_RESOURCES = (
    SERVICES,
    NODES,
    NAMESPACES,
    SECRETS,
    PODS,
    EVENTS,
    CONFIGMAPS,
    ENDPOINTSLICES,
    LEASES,
    CRDS,
    IPADDRESSPOOLS,
    L2ADVERTISEMENTS,
    SERVICE_L2_STATUSES,
    BGPPEERS,
    BGPADVERTISEMENTS,
    BFDPROFILES,
    COMMUNITIES,
)


def resource_for(api_version: str, kind: str) -> Resource:
    """The Resource of a manifest's apiVersion/kind; raises ApiError for unknown kinds."""
    for r in KNOWN_RESOURCES:
        if r.api_version == api_version and r.kind == kind:
            return r
    raise ApiError(f"resolving manifest: unknown kind '{kind}' in apiVersion '{api_version}'")


def apply(kube: Kube, obj: JSON) -> JSON:
    """Create obj, or replace it (keeping its resourceVersion) if it exists."""
    res = resource_for(str(obj.get("apiVersion")), str(obj.get("kind")))
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ("default" if res.namespaced else None)
    try:
        return kube.create(res, obj, namespace=ns)
    except ConflictError:
        cur = kube.get(res, str(meta.get("name")), ns)
        body = {
            **obj,
            "metadata": {**meta, "resourceVersion": (cur.get("metadata") or {}).get("resourceVersion")},
        }
        return kube.replace(res, str(meta.get("name")), body, ns)
