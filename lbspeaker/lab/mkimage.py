"""Pack a root filesystem folder into a docker-archive image without Docker or a registry.

The archive is what `docker save` writes (one layer, `manifest.json`, an image config) and what
`ctr images import` and `docker load` accept. It is reproducible: entries are sorted, owned by
root, and carry one fixed mtime (SOURCE_DATE_EPOCH, default 0), so the same folder gives the same
bytes and the same image ID. Modes, symlinks and hard links are kept; sockets are left out;
owners are not (everything belongs to root, as in an image built by a root Dockerfile).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _walk(root: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        base = Path(dirpath)
        out.extend(base / d for d in dirnames)
        out.extend(base / f for f in sorted(filenames))
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def write_layer(root: Path, out: Path, *, mtime: int) -> str:
    """Write ROOT as an uncompressed tar layer; return its sha256 hex digest (the diff ID)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        for p in _walk(root):
            info = t.gettarinfo(str(p), arcname=p.relative_to(root).as_posix())
            if info is None:  # a socket: nothing an image can carry
                continue
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = mtime
            info.pax_headers = {}
            if info.isreg():
                with p.open("rb") as f:
                    t.addfile(info, f)
            else:
                t.addfile(info)
    h = hashlib.sha256()
    with out.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def pack(root: Path, ref: str, out: Path, *, cmd: Sequence[str], entrypoint: Sequence[str] = (),
         env: Sequence[str] = (), workdir: str = "/", user: str = "", mtime: int = 0) -> str:
    """Pack ROOT as image REF into the docker-archive OUT; return the image ID (config digest)."""
    with tempfile.TemporaryDirectory(dir=out.parent) as td:
        layer = Path(td) / "layer.tar"
        digest = write_layer(root, layer, mtime=mtime)
        created = "1970-01-01T00:00:00Z" if mtime == 0 else _iso(mtime)
        config: dict[str, object] = {
            "Cmd": list(cmd), "Env": [DEFAULT_PATH, *env], "WorkingDir": workdir,
        }
        if entrypoint:
            config["Entrypoint"] = list(entrypoint)
        if user:
            config["User"] = user
        cfg = {
            "architecture": "amd64", "os": "linux", "created": created, "config": config,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{digest}"]},
            "history": [{"created": created, "created_by": "lbspeaker.lab.mkimage"}],
        }
        cfg_bytes = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
        image_id = hashlib.sha256(cfg_bytes).hexdigest()
        manifest = [{"Config": f"{image_id}.json", "RepoTags": [ref], "Layers": [f"{digest}/layer.tar"]}]
        tmp = out.with_suffix(out.suffix + ".tmp")
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:
            _add_bytes(t, f"{image_id}.json", cfg_bytes, mtime)
            info = t.gettarinfo(str(layer), arcname=f"{digest}/layer.tar")
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mtime = mtime
            with layer.open("rb") as f:
                t.addfile(info, f)
            _add_bytes(t, "manifest.json", json.dumps(manifest).encode(), mtime)
            _add_bytes(t, "repositories", json.dumps(
                {ref.rsplit(":", 1)[0]: {ref.rsplit(":", 1)[1]: digest}}).encode(), mtime)
        tmp.replace(out)
    return image_id


def _add_bytes(t: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = mtime
    info.mode = 0o644
    info.uname = info.gname = "root"
    t.addfile(info, io.BytesIO(data))


def _iso(ts: int) -> str:
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: mkimage ROOTFS NAME:TAG OUT.tar [--cmd a,b] [--env K=V] ..."""
    ap = argparse.ArgumentParser(prog="mkimage", description=__doc__)
    ap.add_argument("rootfs", type=Path)
    ap.add_argument("ref")
    ap.add_argument("out", type=Path)
    ap.add_argument("--cmd", default="/bin/sh", help="comma-separated")
    ap.add_argument("--entrypoint", default="", help="comma-separated")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--workdir", default="/")
    ap.add_argument("--user", default="")
    a = ap.parse_args(argv)
    mtime = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    image_id = pack(a.rootfs, a.ref, a.out.resolve(), cmd=a.cmd.split(",") if a.cmd else [],
                    entrypoint=a.entrypoint.split(",") if a.entrypoint else [], env=a.env,
                    workdir=a.workdir, user=a.user, mtime=mtime)
    print(a.ref, f"sha256:{image_id}", a.out.stat().st_size)


if __name__ == "__main__":
    main()
