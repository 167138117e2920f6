"""Link state of the responder's interface (administratively up and with carrier).

Why an ioctl on a socket and not /sys/class/net: a socket stays bound to the network namespace it
was created in, whichever thread later uses it; /sys follows the mount, so it would lie to a
responder opened by a thread that entered a namespace with setns(). No pyroute2: its sync API
misbehaves inside event loops (DESIGN.md trap 8) and one ioctl is enough.

Invariant: ``LinkProbe`` opens its socket in ``__init__`` (the caller's namespace); ``is_up`` never
raises for a missing or down interface, it answers False.
"""

from __future__ import annotations

import fcntl
import socket
import struct

from lbspeaker.core.errors import NetworkError

SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFF_RUNNING = 0x40


class LinkProbe:
    """Queries one interface through sockets bound to the namespace it was created in."""

    def __init__(self, interface: str) -> None:
        self.interface = interface
        try:
            self.ifindex = socket.if_nametoindex(interface)
        except OSError as err:
            raise NetworkError(f"opening interface '{interface}': looking up its index: {err}") from err
        self._ioctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def is_up(self) -> bool:
        """True when the interface is administratively up and has carrier (IFF_UP and IFF_RUNNING)."""
        req = struct.pack("16sH14x", self.interface.encode(), 0)
        try:
            res = fcntl.ioctl(self._ioctl.fileno(), SIOCGIFFLAGS, req)
        except OSError:
            return False
        flags: int = struct.unpack("16sH14x", res)[1]
        return flags & (IFF_UP | IFF_RUNNING) == IFF_UP | IFF_RUNNING

    def close(self) -> None:
        """Close the probe's socket; idempotent."""
        self._ioctl.close()
