"""Reads the node's links and addresses over netlink, for automatic interface selection.

Why netlink (pyroute2's sync ``IPRoute``) and not ``ip -j addr`` or /sys: the speaker re-reads
every second and a netlink dump costs ~2 ms without a subprocess; the socket is bound to the
namespace it was opened in, like the responder's sockets. The sync API is fine here: it runs on
the speaker's worker thread, never inside an event loop (DESIGN.md trap 8).

Invariants: the socket is opened in ``__init__`` (the caller's namespace); ``read`` is
serialised by a lock, returns links ordered by ifindex and never raises for netlink errors (it
logs and returns the last good snapshot); a link that is down is reported with the addresses it
had when last up (``keep_down_addresses``).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from typing import Any

from pyroute2 import IPRoute

from lbspeaker.core.errors import NetworkError
from lbspeaker.core.ifselect import IPInterface, LinkInfo

log = logging.getLogger(__name__)

IFF_UP = 0x1
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000


def _is_up(flags: int) -> bool:
    """Administratively up with carrier (IFF_RUNNING, or IFF_LOWER_UP on links without operstate)."""
    return bool(flags & IFF_UP) and bool(flags & (IFF_RUNNING | IFF_LOWER_UP))


def to_links(links: list[Any], addrs: list[Any]) -> tuple[LinkInfo, ...]:
    """Netlink link and address messages to LinkInfo, ordered by ifindex."""
    by_index: dict[int, list[IPInterface]] = {}
    for msg in addrs:
        address = msg.get("local") or msg.get("address")  # IFA_LOCAL: IPv4 own address
        if not address:
            continue
        try:
            iface = ipaddress.ip_interface(f"{address}/{msg['prefixlen']}")
        except ValueError:
            continue
        by_index.setdefault(int(msg["index"]), []).append(iface)
    out = []
    for msg in sorted(links, key=lambda m: int(m["index"])):
        name = msg.get("ifname")
        if not name:
            continue
        index = int(msg["index"])
        out.append(LinkInfo(str(name), _is_up(int(msg["flags"])), tuple(by_index.get(index, ())), index))
    return tuple(out)


def keep_down_addresses(links: tuple[LinkInfo, ...], remembered: dict[int, tuple[IPInterface, ...]]
                        ) -> tuple[LinkInfo, ...]:
    """Links that are down keep the addresses they had when last up (``remembered`` is updated).

    Without ``keep_addr_on_down`` the kernel flushes IPv6 addresses on link down (and a DHCP
    client may drop IPv4 ones): the VIP's subnet would then seem to be nowhere, automatic
    selection would fall back to the other NICs and the node would keep announcing there
    instead of stepping down.
    """
    out = []
    live = {link.index for link in links}
    for gone in set(remembered) - live:
        del remembered[gone]
    for link in links:
        if link.up:
            remembered[link.index] = link.addresses
            out.append(link)
            continue
        extra = tuple(a for a in remembered.get(link.index, ()) if a not in link.addresses)
        out.append(LinkInfo(link.name, link.up, link.addresses + extra, link.index))
    return tuple(out)


class LinkReader:
    """Snapshots of the node's links through one netlink socket."""

    def __init__(self) -> None:
        try:
            self._ipr = IPRoute()
        except OSError as err:
            raise NetworkError(f"opening netlink to read links: {err}") from err
        self._lock = threading.Lock()
        self._last: tuple[LinkInfo, ...] = ()
        self._remembered: dict[int, tuple[IPInterface, ...]] = {}

    def read(self) -> tuple[LinkInfo, ...]:
        """The node's links with their addresses now (the last good snapshot on a netlink error)."""
        with self._lock:
            try:
                links = list(self._ipr.get_links())
                addrs = list(self._ipr.get_addr())
            except Exception as err:  # pyroute2 raises NetlinkError, OSError and its own types
                log.warning("links.read_failed error=%s", err)
                return self._last
            self._last = keep_down_addresses(to_links(links, addrs), self._remembered)
            return self._last

    def close(self) -> None:
        """Close the netlink socket; idempotent."""
        with self._lock:
            self._ipr.close()
