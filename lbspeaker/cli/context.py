"""Which API lbctl talks to: --kubeconfig, $KUBECONFIG, the running lab, or ~/.kube/config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from lbspeaker.core.config import POOL_KIND, Config
from lbspeaker.core.configstate import seed_from
from lbspeaker.core.errors import ApiError, ConfigError, LbError, NotFoundError
from lbspeaker.core.lastgood import LastGood, Outcome
from lbspeaker.core.loader import RawConfig
from lbspeaker.k8s.client import (
    BFDPROFILES,
    BGPADVERTISEMENTS,
    BGPPEERS,
    COMMUNITIES,
    CONFIGURATION_STATES,
    IPADDRESSPOOLS,
    JSON,
    L2ADVERTISEMENTS,
    NAMESPACES,
    SECRETS,
    Kube,
)
from lbspeaker.lab.topology import Topology

SPEAKER_NS = "lbspeaker-system"
CONFIG_RESOURCES = (IPADDRESSPOOLS, L2ADVERTISEMENTS, BGPPEERS, BGPADVERTISEMENTS, BFDPROFILES, COMMUNITIES)


def connect(kubeconfig: str | None) -> Kube:
    """A Kube for the chosen API; a clear error when none is reachable."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if not path:
        lab = Topology().kubeconfig
        if lab.exists():
            path = str(lab)
        elif not (Path.home() / ".kube" / "config").exists():
            raise click.ClickException("no Kubernetes API: pass --kubeconfig, set KUBECONFIG, or run 'lbctl lab up'")
    try:
        return Kube.from_kubeconfig(path)
    except LbError as err:
        raise click.ClickException(str(err)) from err


@dataclass(frozen=True)
class LiveConfig:
    """The live config as the controller acts on it: the live objects through the shared
    LastGood policy, seeded with the controller's published last good versions."""

    outcome: Outcome
    pools_raw: list[Mapping[str, Any]]

    @property
    def config(self) -> Config:
        """The L2 part in force (pools and L2Advertisements)."""
        return self.outcome.loaded.config.l2

    @property
    def ignored(self) -> list[ConfigError]:
        """Invalid edits ignored: the object's last good version is in force."""
        return [r.error for r in self.outcome.rejections if r.in_force]

    @property
    def left_out(self) -> list[ConfigError]:
        """Objects with no valid version: not in force at all."""
        return [r.error for r in self.outcome.rejections if not r.in_force]

    @property
    def errors(self) -> list[ConfigError]:
        """Every rejection's error."""
        return [r.error for r in self.outcome.rejections]


def live_raw(kube: Kube, namespace: str = SPEAKER_NS) -> RawConfig:
    """Every lbspeaker config object, Namespace and Secret the loader reads, from the API."""
    by_kind: dict[str, list[JSON]] = {}
    for res in CONFIG_RESOURCES:
        try:
            by_kind[res.kind] = kube.list(res, namespace)[0]
        except NotFoundError:
            by_kind[res.kind] = []  # that CRD is not installed (e.g. no BGP kinds)
    nss, _ = kube.list(NAMESPACES)
    try:
        secrets, _ = kube.list(SECRETS, namespace)
    except ApiError:
        secrets = []  # passwords only: lbctl works without the right to read Secrets
    return RawConfig.of(by_kind, namespaces=nss, secrets=secrets)


def load_config(kube: Kube, namespace: str = SPEAKER_NS) -> LiveConfig:
    """Load the live config exactly as the controller does (loader + LastGood + its lastGood seed)."""
    raw = live_raw(kube, namespace)
    lg = LastGood()
    try:
        state = kube.get(CONFIGURATION_STATES, "controller", namespace)
        lg.seed(seed_from(state.get("status"), raw))
    except ApiError:
        pass  # no controller state yet (or not readable): the live objects alone
    return LiveConfig(lg.update(raw), raw.of_kind(POOL_KIND))


kubeconfig_option = click.option("--kubeconfig", default=None, help="Kubeconfig (default: $KUBECONFIG, the lab, "
                                                                     "~/.kube/config).")
output_option = click.option("-o", "--output", type=click.Choice(["table", "wide", "json", "yaml"]), default="table",
                             show_default=True)
