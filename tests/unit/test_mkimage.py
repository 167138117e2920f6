"""mkimage: a folder becomes the same docker-archive every time, root-owned, links kept."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tarfile
from pathlib import Path

import pytest

from lbspeaker.lab import mkimage


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "usr/bin").mkdir(parents=True)
    (root / "etc").mkdir()
    tool = root / "usr/bin/tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    secret = root / "etc/secret"
    secret.write_text("s\n")
    secret.chmod(0o600)
    (root / "bin").symlink_to("usr/bin")
    os.link(tool, root / "usr/bin/tool2")
    return root


def _pack(root: Path, out: Path) -> str:
    return mkimage.pack(root, "demo:1", out, cmd=["/usr/bin/tool"], env=["A=b"], workdir="/etc", mtime=1234567890)


def test_same_folder_same_bytes_and_id(rootfs: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    id_a = _pack(rootfs, a)
    os.utime(rootfs / "etc/secret", (1, 1))  # host mtimes do not matter
    id_b = _pack(rootfs, b)
    assert id_a == id_b
    assert a.read_bytes() == b.read_bytes()


def test_manifest_and_config(rootfs: Path, tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    image_id = _pack(rootfs, out)
    with tarfile.open(out) as t:
        manifest = json.loads(t.extractfile("manifest.json").read())  # type: ignore[union-attr]
        (entry,) = manifest
        assert entry == {"Config": f"{image_id}.json", "RepoTags": ["demo:1"], "Layers": [entry["Layers"][0]]}
        cfg_bytes = t.extractfile(f"{image_id}.json").read()  # type: ignore[union-attr]
        layer = t.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
        repos = json.loads(t.extractfile("repositories").read())  # type: ignore[union-attr]
    assert hashlib.sha256(cfg_bytes).hexdigest() == image_id
    cfg = json.loads(cfg_bytes)
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]}
    assert (cfg["os"], cfg["architecture"]) == ("linux", "amd64")
    assert cfg["config"]["Cmd"] == ["/usr/bin/tool"]
    assert cfg["config"]["Env"] == [mkimage.DEFAULT_PATH, "A=b"]
    assert cfg["config"]["WorkingDir"] == "/etc"
    assert "User" not in cfg["config"] and "Entrypoint" not in cfg["config"]
    assert cfg["created"] == "2009-02-13T23:31:30Z"
    assert repos == {"demo": {"1": hashlib.sha256(layer).hexdigest()}}


def test_layer_entries_root_owned_modes_and_links_kept(rootfs: Path, tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(rootfs / "etc/sock"))
    try:
        out = tmp_path / "img.tar"
        _pack(rootfs, out)
    finally:
        sock.close()
    with tarfile.open(out) as t:
        layer_name = json.loads(t.extractfile("manifest.json").read())[0]["Layers"][0]  # type: ignore[union-attr]
        with tarfile.open(fileobj=t.extractfile(layer_name)) as layer:
            entries = {m.name: m for m in layer.getmembers()}
    assert list(entries) == sorted(entries)
    assert set(entries) == {"bin", "etc", "etc/secret", "usr", "usr/bin", "usr/bin/tool", "usr/bin/tool2"}
    assert all((m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "root", "root", 1234567890)
               for m in entries.values())
    assert entries["bin"].issym() and entries["bin"].linkname == "usr/bin"
    assert entries["usr/bin/tool2"].islnk() and entries["usr/bin/tool2"].linkname == "usr/bin/tool"
    assert entries["usr/bin/tool"].mode & 0o777 == 0o755
    assert entries["etc/secret"].mode & 0o777 == 0o600
    assert entries["usr/bin"].isdir()


def test_cli(rootfs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1234567890")
    out = tmp_path / "cli.tar"
    mkimage.main([str(rootfs), "demo:1", str(out), "--cmd", "/usr/bin/tool", "--env", "A=b", "--workdir", "/etc"])
    ref, image_id, size = capsys.readouterr().out.split()
    assert (ref, int(size)) == ("demo:1", out.stat().st_size)
    assert image_id == "sha256:" + _pack(rootfs, tmp_path / "api.tar")
