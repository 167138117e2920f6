"""Who announces an IP: weighted rendezvous (highest-random-weight) hashing, keyed by IP.

Every speaker runs this on the same inputs and reaches the same answer without talking to the
others, so there is no leader and nothing to agree on at failover time.

Invariants:

- Deterministic across processes, hosts and Python versions: the hash is BLAKE2b over the IP's
  packed bytes and the node name, never Python's salted ``hash()``.
- Each node's score for an IP depends only on (IP, node name, node weight). Removing a node
  that is not the winner therefore never moves the IP, and adding a node moves it only to that
  node (the rendezvous property).
- Weighted scores are ``-w / ln(u)`` with ``u`` the hash mapped into (0, 1): a node with twice
  the weight wins about twice as often, and with all weights equal the ranking is exactly the
  unweighted one.
- Ties (equal float scores) are broken by the raw 64-bit hash, then by the name, so the order
  is total.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

from lbspeaker.core.service import IPAddress

DEFAULT_WEIGHT = 1.0
_TWO_64 = float(2**64)


def node_hash(ip: IPAddress, node: str) -> int:
    """The stable 64-bit hash of (ip, node) that the election ranks by."""
    h = hashlib.blake2b(digest_size=8, person=b"lbspeaker-elect")
    h.update(ip.packed)
    h.update(b"\x00")
    h.update(node.encode("utf-8"))
    return int.from_bytes(h.digest(), "big")


def score(ip: IPAddress, node: str, *, weight: float = DEFAULT_WEIGHT) -> float:
    """The weighted rendezvous score of node for ip; higher wins."""
    _check_weight(node, weight)
    u = (node_hash(ip, node) + 0.5) / _TWO_64  # strictly inside (0, 1)
    return -weight / math.log(u)


def ranking(ip: IPAddress, candidates: Iterable[str], *, weights: Mapping[str, float] | None = None) -> list[str]:
    """The candidates ordered best first for ip; duplicates are dropped."""
    keyed: list[tuple[float, int, str]] = []
    for node in set(candidates):
        weight = DEFAULT_WEIGHT if weights is None else weights.get(node, DEFAULT_WEIGHT)
        keyed.append((score(ip, node, weight=weight), node_hash(ip, node), node))
    keyed.sort(key=lambda k: (-k[0], -k[1], k[2]))
    return [node for _, _, node in keyed]


def winner(ip: IPAddress, candidates: Iterable[str], *, weights: Mapping[str, float] | None = None) -> str | None:
    """The node that announces ip, or None when there is no candidate."""
    ranked = ranking(ip, candidates, weights=weights)
    return ranked[0] if ranked else None


def _check_weight(node: str, weight: float) -> None:
    if not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"ranking node '{node}': weight {weight!r}: must be a finite number above 0")
