"""The image scripts/build-image.sh built imports into a real containerd and runs read-only, as root or nobody.

Skips when the image (run scripts/build-image.sh) or the Debian containerd of the real-cluster
runtime (scripts/build-real-apiservers.sh) is not on this machine; it never builds either.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.netns, pytest.mark.slow]

IMAGE = Path(os.environ.get("LBSPEAKER_IMAGE", "/var/cache/lbspeaker/images/lbspeaker-0.1.0.tar"))
RUNTIME = Path("/var/cache/lbspeaker/real-apiservers/node-runtime/usr/bin")
REF = "lbspeaker:0.1.0"


@pytest.fixture(scope="module")
def image() -> Path:
    if not IMAGE.is_file():
        pytest.skip(f"no image at {IMAGE}: run bash scripts/build-image.sh")
    return IMAGE


@pytest.fixture(scope="module")
def ctr(image: Path) -> Iterator[list[str]]:
    """A private containerd (own root, state and socket; no CRI) and the ctr command for it."""
    if not (RUNTIME / "containerd").is_file():
        pytest.skip(f"no containerd under {RUNTIME}")
    tmp = Path(tempfile.mkdtemp(prefix="lbs-ctrd-"))
    sock = tmp / "containerd.sock"
    (tmp / "config.toml").write_text(
        f'version = 2\nroot = "{tmp}/root"\nstate = "{tmp}/state"\n'
        f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "{sock}"\n'
        f'[ttrpc]\n  address = "{sock}.ttrpc"\n[debug]\n  address = ""\n'
    )
    env = {**os.environ, "PATH": f"{RUNTIME}:{os.environ.get('PATH', '')}"}
    log = (tmp / "containerd.log").open("wb")
    proc = subprocess.Popen([str(RUNTIME / "containerd"), "--config", str(tmp / "config.toml")],
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    cmd = [str(RUNTIME / "ctr"), "-a", str(sock), "-n", "k8s.io"]
    try:
        deadline = time.monotonic() + 20
        while subprocess.run([*cmd, "version"], capture_output=True).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, (tmp / "containerd.log").read_text()
            time.sleep(0.2)
        yield cmd
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        subprocess.run(["umount", "-R", "-l", str(tmp / "state")], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


def test_archive_layout(image: Path) -> None:
    with tarfile.open(image) as t:
        (entry,) = json.loads(t.extractfile("manifest.json").read())  # type: ignore[union-attr]
        cfg = json.loads(t.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
    assert entry["RepoTags"] == [REF]
    assert "User" not in cfg["config"]
    assert {"PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1"} <= set(cfg["config"]["Env"])


def test_imports_and_runs(ctr: list[str], image: Path) -> None:
    p = subprocess.run([*ctr, "images", "import", str(image)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    listed = subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True, check=True).stdout.split()
    (name,) = [n for n in listed if n.endswith("/" + REF)]
    nobody = ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups"]  # ctr 1.6 has no --user
    runs = (["exabgp", "version"], [*nobody, "lbspeaker-controller", "--help"], ["lbspeaker-speaker", "--help"],
            [*nobody, "python3", "-c", "import scapy.all, pyroute2, kubernetes, lbspeaker.speaker.main"])
    for i, argv in enumerate(runs):
        p = subprocess.run([*ctr, "run", "--rm", "--read-only", "--net-host", name, f"t{i}", *argv],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, (argv, p.stdout, p.stderr)
