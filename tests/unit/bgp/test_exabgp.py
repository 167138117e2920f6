"""exabgp configuration and command text (golden files), and parsing of exabgp's answers."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbspeaker.core.bgp.bgpobjects import BFDProfile
from lbspeaker.core.bgp.exabgp import (
    Ack,
    Notification,
    PeerState,
    announce_commands,
    eor_command,
    parse_line,
    render_config,
    teardown_command,
    withdraw_commands,
)
from lbspeaker.core.bgp.routes import Route, Session
from lbspeaker.core.bgp.values import LargeCommunity, StandardCommunity

GOLDEN = Path(__file__).parent / "golden"
ip = ipaddress.ip_address
net = ipaddress.ip_network
EXABGP = Path(sys.executable).parent / "exabgp"

SESSIONS = [
    Session(
        peer="r6",
        peer_address=ip("2001:db8::1"),
        local_address=ip("2001:db8::2"),
        my_asn=64513,
        peer_asn=64512,
        router_id=ipaddress.IPv4Address("192.0.2.2"),
        hold_time_s=9,
        graceful_restart_s=120,
    ),
    Session(
        peer="r4",
        peer_address=ip("192.0.2.1"),
        local_address=ip("192.0.2.2"),
        my_asn=64512,
        peer_asn=64512,
        router_id=ipaddress.IPv4Address("192.0.2.2"),
        peer_port=1179,
        password='p;a s"s{}',
        bfd=BFDProfile("f"),
    ),
    Session(
        peer="multihop",
        peer_address=ip("198.51.100.1"),
        local_address=ip("192.0.2.2"),
        my_asn=64513,
        peer_asn=64512,
        router_id=ipaddress.IPv4Address("192.0.2.2"),
        hold_time_s=0,
        ebgp_multihop=True,
    ),
]


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_config_golden_and_accepted_by_exabgp(tmp_path: Path) -> None:
    text = render_config(SESSIONS, process_command=["/usr/bin/python3", "-I", "/opt/relay.py", "/run/x.sock"])
    golden("exabgp.conf", text)
    # exabgp's own parser is the judge of the syntax; the process path must exist for it.
    conf = tmp_path / "exabgp.conf"
    conf.write_text(text.replace("/opt/relay.py", __file__))
    res = subprocess.run([str(EXABGP), "validate", str(conf)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_config_rejects_unsafe_tokens() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        render_config([], process_command=["/bin/relay; rm"])


def test_commands_golden() -> None:
    routes = [
        Route(net("203.0.113.1/32")),
        Route(
            net("203.0.113.0/24"),
            local_pref=200,
            communities=(StandardCommunity(65000, 100), LargeCommunity(1, 2, 3)),
        ),
        Route(net("203.0.113.3/32")),
        Route(net("203.0.113.2/32")),
        Route(net("203.0.113.9/32"), next_hop=ip("192.0.2.77")),
    ]
    lines = announce_commands(ip("192.0.2.1"), routes, batch=2)
    lines += announce_commands(ip("2001:db8::1"), [Route(net("2001:db8:1::5/128")), Route(net("2001:db8:1::/64"))])
    lines += announce_commands(ip("2001:db8::1"), [Route(net("2001:db8:1::6/128"))], local=ip("2001:db8::2"))
    lines += withdraw_commands(
        ip("192.0.2.1"), [net("203.0.113.3/32"), net("203.0.113.1/32"), net("203.0.113.2/32")], batch=2
    )
    lines.append(teardown_command(ip("2001:db8::1")))
    lines += [eor_command(ip("192.0.2.1")), eor_command(ip("2001:db8::1"))]
    golden("commands.txt", "\n".join(lines) + "\n")
    assert all(line.startswith("neighbor ") for line in lines), "every command names its neighbor (trap 5)"


def test_empty_inputs_give_no_commands() -> None:
    assert announce_commands(ip("192.0.2.1"), []) == []
    assert withdraw_commands(ip("192.0.2.1"), []) == []


STATE_UP = (
    '{ "exabgp": "5.0.0", "time": 1.0, "host" : "vm", "pid" : 1, "ppid" : 1, "counter": 2, "type": "state", '
    '"neighbor": { "address": { "local": "192.0.2.2", "peer": "192.0.2.1" }, "asn": { "local": 64513, '
    '"peer": 64512 }, "router-id": "192.0.2.2" , "state": "up" } }'
)
STATE_DOWN = STATE_UP.replace('"state": "up"', '"state": "down", "reason": "closing connection"')
NOTE = (
    '{ "exabgp": "5.0.0", "type": "notification", "neighbor": { "address": { "local": "192.0.2.2", '
    '"peer": "192.0.2.1" }, "message": { "notification": { "code": 6, "subcode": 2 } } } }'
)


@pytest.mark.parametrize(
    ("line", "msg"),
    [
        ("done\n", Ack(True)),
        ("error\n", Ack(False)),
        (STATE_UP, PeerState(ip("192.0.2.1"), ip("192.0.2.2"), "up")),
        (STATE_DOWN, PeerState(ip("192.0.2.1"), ip("192.0.2.2"), "down", "closing connection")),
        (NOTE, Notification(ip("192.0.2.1"), '{"code": 6, "subcode": 2}')),
        ("{not json", None),
        ('{"type": "state"}', None),
        ('{"type": "state", "neighbor": {"address": {"peer": "x"}}}', None),
        ("hello", None),
    ],
)
def test_parse_line(line: str, msg: object) -> None:
    assert parse_line(line) == msg
