"""The raw sockets of the L2 responder: AF_PACKET with a classic BPF filter, and multicast joins.

Why a module of its own: socket options, struct layouts and the BPF program are the fiddly,
kernel-facing part; the responder logic stays readable and the filter is reviewed in one place.

Invariants (DESIGN.md §5 traps 3 and 4):
- The packet socket is opened with protocol 0, gets its filter, and only then is bound with
  ETH_P_ALL, so no unfiltered frame is ever queued. It ignores our own outgoing frames
  (PACKET_IGNORE_OUTGOING) and has a large receive buffer (SO_RCVBUFFORCE).
- The filter passes ARP, and IPv6 frames whose next header is ICMPv6 with type 135 (NS) or 136 (NA);
  frames the NIC saw only because it floods or is promiscuous (PACKET_OTHERHOST) are dropped.
- Solicited-node groups are joined with IPV6_JOIN_GROUP on a UDP6 socket, which makes the kernel send
  MLD reports (snooping switches then deliver the NS); PACKET_ADD_MEMBERSHIP would not.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct

from lbspeaker.core.errors import NetworkError

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
PACKET_OTHERHOST = 3
RCVBUF_BYTES = 8 << 20
SNAPLEN = 2048  # enough for any sane NS/NA; ARP needs 42 bytes

# classic BPF opcodes
_LD_W_ABS = 0x20
_LD_H_ABS = 0x28
_LD_B_ABS = 0x30
_JEQ_K = 0x15
_RET_K = 0x06
_SKF_AD_PKTTYPE = 0xFFFFF000 + 4  # SKF_AD_OFF + SKF_AD_PKTTYPE: load skb->pkt_type


def bpf_program() -> list[tuple[int, int, int, int]]:
    """The filter as (code, jt, jf, k) instructions; jumps count from the next instruction."""
    return [
        (_LD_W_ABS, 0, 0, _SKF_AD_PKTTYPE),  # 0  A = skb->pkt_type
        (_JEQ_K, 9, 0, PACKET_OTHERHOST),  # 1  seen only by flooding -> drop (11)
        (_LD_H_ABS, 0, 0, 12),  # 2  A = ethertype
        (_JEQ_K, 6, 0, 0x0806),  # 3  ARP -> accept (10)
        (_JEQ_K, 0, 6, 0x86DD),  # 4  not IPv6 -> drop (11)
        (_LD_B_ABS, 0, 0, 20),  # 5  A = IPv6 next header
        (_JEQ_K, 0, 4, 58),  # 6  not ICMPv6 -> drop (11)
        (_LD_B_ABS, 0, 0, 54),  # 7  A = ICMPv6 type
        (_JEQ_K, 1, 0, 135),  # 8  NS -> accept (10)
        (_JEQ_K, 0, 1, 136),  # 9  NA -> accept (10), else drop (11)
        (_RET_K, 0, 0, SNAPLEN),  # 10 accept
        (_RET_K, 0, 0, 0),  # 11 drop
    ]


FILTER = bpf_program()


def attach_filter(sock: socket.socket, program: list[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program (SO_ATTACH_FILTER); the kernel copies it."""
    insns = b"".join(struct.pack("HBBI", code, jt, jf, k) for code, jt, jf, k in program)
    buf = ctypes.create_string_buffer(insns)
    fprog = struct.pack("HL", len(program), ctypes.addressof(buf))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


def open_packet_socket(interface: str) -> socket.socket:
    """Open the responder's filtered, non-blocking AF_PACKET socket bound to ``interface``."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    try:
        attach_filter(sock, FILTER)
        sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
        sock.bind((interface, ETH_P_ALL))
        sock.setblocking(False)
    except OSError as err:
        sock.close()
        raise NetworkError(f"opening packet socket: interface '{interface}': {err}") from err
    return sock


def ipv6_mreq(group: ipaddress.IPv6Address, ifindex: int) -> bytes:
    """struct ipv6_mreq for IPV6_JOIN_GROUP / IPV6_LEAVE_GROUP."""
    return group.packed + struct.pack("@I", ifindex)


def join_group(sock: socket.socket, group: ipaddress.IPv6Address, ifindex: int) -> None:
    """Join an IPv6 multicast group on ``ifindex`` (the kernel sends an MLD report)."""
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, ipv6_mreq(group, ifindex))


def leave_group(sock: socket.socket, group: ipaddress.IPv6Address, ifindex: int) -> None:
    """Leave an IPv6 multicast group on ``ifindex``."""
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_LEAVE_GROUP, ipv6_mreq(group, ifindex))
