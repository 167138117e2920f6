"""``lbctl bgp peers``: every node's BGP session to every peer, read from BGPPeer status."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import click

from lbspeaker.cli.context import SPEAKER_NS, connect, kubeconfig_option, output_option
from lbspeaker.cli.format import age, render
from lbspeaker.core.errors import ApiError
from lbspeaker.k8s.client import BGPPEERS, JSON


@dataclass(frozen=True)
class PeerRow:
    """One (node, peer) session as its speaker reported it."""

    node: str
    peer: str
    address: str
    asn: str
    state: str
    prefixes: int
    since: str
    last_error: str
    reason: str
    bfd: str


def peer_rows(peers: Iterable[JSON]) -> list[PeerRow]:
    """Rows from raw BGPPeer objects (one per node entry in status.nodes), sorted by node then peer."""
    rows: list[PeerRow] = []
    for p in peers:
        name = str((p.get("metadata") or {}).get("name") or "")
        spec: dict[str, Any] = p.get("spec") or {}
        for n in (p.get("status") or {}).get("nodes") or []:
            if not isinstance(n, dict):
                continue
            rows.append(
                PeerRow(
                    node=str(n.get("node") or ""),
                    peer=name,
                    address=str(spec.get("peerAddress") or ""),
                    asn=f"{spec.get('myASN', '?')}->{spec.get('peerASN', '?')}",
                    state=str(n.get("state") or "Unknown"),
                    prefixes=int(n.get("prefixesAnnounced") or 0),
                    since=str(n.get("lastTransitionTime") or ""),
                    last_error=str(n.get("lastError") or ""),
                    reason=str(n.get("reason") or ""),
                    bfd=str(n.get("bfdState") or ""),
                )
            )
    return sorted(rows, key=lambda r: (r.node, r.peer))


def table_rows(rows: Iterable[PeerRow], *, wide: bool = False) -> list[list[str]]:
    """Table cells for rows (wide adds ADDRESS, BFD and REASON)."""
    out = []
    for r in rows:
        cells = [r.node, r.peer, r.asn, r.state, str(r.prefixes), age(r.since), r.last_error or "-"]
        if wide:
            cells += [r.address, r.bfd or "-", r.reason or "-"]
        out.append(cells)
    return out


HEADERS = ["NODE", "PEER", "ASN", "STATE", "PREFIXES", "SINCE", "LAST-ERROR"]
WIDE_HEADERS = [*HEADERS, "ADDRESS", "BFD", "REASON"]


@click.group()
def bgp() -> None:
    """BGP mode."""


@bgp.command("peers")
@kubeconfig_option
@output_option
@click.option("-n", "--namespace", default=SPEAKER_NS, show_default=True, help="Where the BGPPeers live.")
def peers_cmd(kubeconfig: str | None, output: str, namespace: str) -> None:
    """Per node and peer: session state, prefixes announced, since when, last error."""
    kube = connect(kubeconfig)
    try:
        items, _ = kube.list(BGPPEERS, namespace)
    except ApiError as err:
        raise click.ClickException(f"listing BGPPeers in '{namespace}': {err}") from err
    rows = peer_rows(items)
    wide = output == "wide"
    click.echo(
        render([asdict(r) for r in rows], output, WIDE_HEADERS if wide else HEADERS, table_rows(rows, wide=wide))
    )
