"""The exabgp API channel against a fake relay: answers in order, output capture, hang detection."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path

import pytest

from lbspeaker.core.bgp.exabgp import Message, PeerState
from lbspeaker.speaker.bgp.exabgp_api import PROBE, ApiChannel, DriverError

STATE = (
    '{"exabgp": "5.0.0", "type": "state", "neighbor": {"address": {"local": "192.0.2.2", "peer": "192.0.2.1"},'
    ' "state": "up"}}\n'
)


async def _fake_exabgp(path: Path, script: list[str], got: list[str], *, answer: bool = True) -> None:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(STATE.encode())
        while line := await reader.readline():
            cmd = line.decode().strip()
            got.append(cmd)
            if not answer:
                continue
            if cmd == PROBE:
                writer.write(b"done\n")
            elif script:
                writer.write(script.pop(0).encode())
            await writer.drain()
    finally:
        writer.close()


def test_answers_in_order_with_output_and_events(tmp_path: Path) -> None:
    async def scenario() -> None:
        events: list[Message] = []
        connected = asyncio.Event()
        ch = ApiChannel(timeout=5, on_message=events.append, on_connect=connected.set, probe_interval=10)
        await ch.serve(tmp_path / "s")
        got: list[str] = []
        fake = asyncio.create_task(
            _fake_exabgp(tmp_path / "s", ["done\n", '[{"peer": {"address": "192.0.2.1"}}]\ndone\n', "error\n"], got)
        )
        await asyncio.wait_for(connected.wait(), 5)
        res = await ch.commands(["a", "show neighbor json", "bad"])
        assert res == [(True, []), (True, ['[{"peer": {"address": "192.0.2.1"}}]']), (False, [])]
        assert got == ["a", "show neighbor json", "bad"]
        assert events == [PeerState(ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("192.0.2.2"), "up")]
        await ch.close()
        await fake

    asyncio.run(scenario())


def test_hung_exabgp_is_reported_and_recovers(tmp_path: Path) -> None:
    async def scenario() -> None:
        edges: list[bool] = []
        connected = asyncio.Event()
        ch = ApiChannel(
            timeout=5, on_message=lambda m: None, on_connect=connected.set, on_hung=edges.append,
            hang_after=0.2, probe_interval=0.05,
        )  # fmt: skip
        await ch.serve(tmp_path / "s")
        got: list[str] = []
        fake = asyncio.create_task(_fake_exabgp(tmp_path / "s", [], got, answer=False))
        await asyncio.wait_for(connected.wait(), 5)
        for _ in range(100):
            if edges:
                break
            await asyncio.sleep(0.02)
        assert edges == [True] and ch.hung
        assert PROBE in got, "an idle channel is probed"
        fake.cancel()
        await asyncio.gather(fake, return_exceptions=True)
        # a new connection (restarted exabgp) that answers clears the hang
        fake = asyncio.create_task(_fake_exabgp(tmp_path / "s", [], got))
        for _ in range(100):
            if not ch.hung:
                break
            await asyncio.sleep(0.02)
        assert edges == [True, False]
        await ch.close()
        await fake

    asyncio.run(scenario())


def test_commands_without_connection_fail(tmp_path: Path) -> None:
    async def scenario() -> None:
        ch = ApiChannel(timeout=1, on_message=lambda m: None, on_connect=lambda: None)
        await ch.serve(tmp_path / "s")
        with pytest.raises(DriverError, match="no API connection"):
            await ch.commands(["x"])
        await ch.close()

    asyncio.run(scenario())
