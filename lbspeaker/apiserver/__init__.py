"""Embedded Kubernetes API server: an in-memory API over HTTP for the lab and the tests.

Why: no library is faithful enough (resourceVersion, 409/410, watch resume), and the lab, the
demo and every integration test need a cluster API that the official ``kubernetes`` client and
kubectl 1.32 use unchanged. Entry points: :class:`lbspeaker.apiserver.server.EmbeddedServer` and
``lbctl apiserver``. Stdlib + PyYAML only; never imports ``kubernetes``.

Module map: ``server`` (lifecycle, kubeconfig, state file) → ``http`` (HTTP/1.1, static paths,
errors) → ``resources`` (resource endpoints, patches, lists) / ``watchserve`` (watch streams) →
``store`` (objects, global resourceVersion, history, watchers) + ``writes`` (create/update/delete
semantics) → ``objects`` / ``services`` / ``schema`` (admission per kind) ; ``kinds`` (served
resources), ``discovery`` + ``tables`` (what kubectl reads), ``patch``, ``selectors``, ``convert``
(core/v1 ↔ events.k8s.io/v1 Events), ``protobuf`` (kubectl create bodies), ``faults`` (test hooks).

Known gaps (deliberate): no authn/authz, admission webhooks, CEL validation rules, CRD conversion
webhooks (multi-version CRDs share storage, apiVersion as written), managedFields (server-side apply
is approximated as create-or-merge), graceful Pod deletion, protobuf responses, aggregated discovery
(kubectl falls back to the legacy documents), strict field validation of built-in kinds.
"""
