"""The speaker's flags (membership tuning, interfaces) reach the settings and the Membership it starts."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from lbspeaker.speaker import daemon, main


def test_membership_flags_reach_the_membership(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class FakeSpeaker:
        def __init__(self, _kube: object, settings: daemon.SpeakerSettings) -> None:
            seen["settings"] = settings

        def start(self) -> None:
            raise SystemExit(0)

    monkeypatch.setattr(main, "Speaker", FakeSpeaker)
    monkeypatch.setattr(main.Kube, "from_kubeconfig", classmethod(lambda cls, path: object()))
    result = CliRunner().invoke(main.main, ["--node", "n1", "--no-bgp", "--membership-interval", "0.005",
                                            "--membership-timeout", "0.03"])
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.membership_interval, s.membership_timeout) == (0.005, 0.03)


def test_daemon_passes_timings_to_membership(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}

    class FakeMembership:
        def __init__(self, node: str, **kw: Any) -> None:
            made.update(kw)
            raise RuntimeError("stop here")

    sp = daemon.Speaker.__new__(daemon.Speaker)
    sp.s = daemon.SpeakerSettings(node="n1", interfaces=("eth0",), membership_interval=0.005,
                                  membership_timeout=0.03)
    sp.responders, sp.informers = {}, []
    monkeypatch.setattr(daemon, "Membership", FakeMembership)
    monkeypatch.setattr(sp, "_read_secret", lambda: b"k", raising=False)
    with pytest.raises(RuntimeError, match="stop here"):
        sp.start()
    assert (made["interval"], made["timeout"]) == (0.005, 0.03)


@pytest.mark.parametrize(("flags", "env", "want"), [
    ((), "", ()),  # automatic
    ((), "eth1", ("eth1",)),
    ((), " eth0, eth1 ,", ("eth0", "eth1")),
    (("",), "eth9", ()),  # --interface $(LBSPEAKER_INTERFACE) with the variable empty
    (("enp0s8",), "eth9", ("enp0s8",)),  # flags win over the environment
    (("a,b", "a"), "", ("a", "b")),
])
def test_interface_list(flags: tuple[str, ...], env: str, want: tuple[str, ...]) -> None:
    assert main.interface_list(flags, env) == want


@pytest.mark.parametrize(("args", "env", "want"), [
    ([], None, ()),
    ([], "enp0s8", ("enp0s8",)),
    (["--interface", "eth0", "--interface", "eth1"], "", ("eth0", "eth1")),
])
def test_interface_flag_and_env_reach_the_settings(monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                    env: str | None, want: tuple[str, ...]) -> None:
    seen: dict[str, Any] = {}

    class FakeSpeaker:
        def __init__(self, _kube: object, settings: daemon.SpeakerSettings) -> None:
            seen["settings"] = settings

        def start(self) -> None:
            raise SystemExit(0)

    monkeypatch.setattr(main, "Speaker", FakeSpeaker)
    monkeypatch.setattr(main.Kube, "from_kubeconfig", classmethod(lambda cls, path: object()))
    if env is None:
        monkeypatch.delenv(main.INTERFACE_ENV, raising=False)
    else:
        monkeypatch.setenv(main.INTERFACE_ENV, env)
    result = CliRunner().invoke(main.main, ["--node", "n1", "--no-bgp", *args])
    assert result.exit_code == 0, result.output
    assert seen["settings"].interfaces == want
