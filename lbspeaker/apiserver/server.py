"""EmbeddedServer: the in-memory Kubernetes API server the lab, the demo and the tests run against.

Lifecycle: ``start()`` loads the state file (if any), bootstraps the namespaces and the
default/kubernetes Service, and serves in background threads; ``stop()`` closes the listener and
every open connection and watch, joins the threads (bounded) and saves the state file. With a
state file the store is also saved atomically (temp file + rename) every 2 s while dirty.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from pathlib import Path

import yaml

from lbspeaker.apiserver.faults import Faults
from lbspeaker.apiserver.http import ApiHTTPServer, host_port
from lbspeaker.apiserver.store import Store

log = logging.getLogger(__name__)
SAVE_EVERY = 2.0


class EmbeddedServer:
    """An in-memory Kubernetes API over plain HTTP on loopback (or any given host)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        state_file: str | os.PathLike[str] | None = None,
        history_size: int = 1000,
        bookmark_interval: float = 1.0,
        *,
        service_cidrs: tuple[str, ...] = ("198.51.100.0/24", "2001:db8:ffff::/108"),
    ) -> None:
        self.host = host
        self.port = port
        self.state_file = Path(state_file) if state_file else None
        self.bookmark_interval = bookmark_interval
        self.store = Store(history_size=history_size, service_cidrs=service_cidrs)
        self.faults = Faults(self.store)
        self._httpd: ApiHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234``."""
        if self._httpd is None:
            raise RuntimeError("embedded API server: url: not started")
        return f"http://{host_port(self._httpd)}"

    def start(self) -> None:
        """Load state, bootstrap, and serve in background threads; returns once listening."""
        if self._httpd is not None:
            return
        if self.state_file is not None and self.state_file.exists():
            try:
                self.store.load(json.loads(self.state_file.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as err:
                raise RuntimeError(f"embedded API server: loading state '{self.state_file}': {err}") from err
        self.store.bootstrap()
        cls: type[ApiHTTPServer] = ApiHTTPServer
        if ":" in self.host:
            import socket

            cls = type("ApiHTTPServer6", (ApiHTTPServer,), {"address_family": socket.AF_INET6})
        self._httpd = cls(
            (self.host, self.port),
            store=self.store,
            faults=self.faults,
            bookmark_interval=self.bookmark_interval,
        )
        self._stop.clear()
        t = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="apiserver-listen",
            daemon=True,
        )
        t.start()
        self._threads = [t]
        if self.state_file is not None:
            s = threading.Thread(target=self._saver, name="apiserver-save", daemon=True)
            s.start()
            self._threads.append(s)
        log.info("apiserver.started url=%s", self.url)

    def stop(self) -> None:
        """Close the listener and every connection/watch, join threads, save the state file."""
        httpd = self._httpd
        if httpd is None:
            return
        self._stop.set()
        httpd.shutdown()
        httpd.server_close()
        httpd.drop_all()
        for t in self._threads:
            t.join(5.0)
        self._threads = []
        self._httpd = None
        self.save()
        log.info("apiserver.stopped")

    def save(self) -> None:
        """Write the state file atomically (no-op without one)."""
        if self.state_file is None:
            return
        snap = self.store.snapshot()
        data = json.dumps(snap, separators=(",", ":"))
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".apiserver-state-", dir=str(self.state_file.parent))
        try:
            with os.fdopen(fd, "w") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.state_file)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def _saver(self) -> None:
        while not self._stop.wait(SAVE_EVERY):
            if self.store.dirty:
                try:
                    self.save()
                except OSError as err:
                    log.warning("apiserver.save_failed file=%s error=%s", self.state_file, err)

    def kubeconfig(self) -> str:
        """A kubeconfig (YAML) pointing at this server: plain HTTP, no auth, names 'lbspeaker'."""
        cfg = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "lbspeaker", "cluster": {"server": self.url}}],
            "users": [{"name": "lbspeaker", "user": {}}],
            "contexts": [
                {
                    "name": "lbspeaker",
                    "context": {"cluster": "lbspeaker", "user": "lbspeaker", "namespace": "default"},
                }
            ],
            "current-context": "lbspeaker",
            "preferences": {},
        }
        return yaml.safe_dump(cfg, sort_keys=False)

    def write_kubeconfig(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`kubeconfig` to ``path``."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.kubeconfig())

    def __enter__(self) -> EmbeddedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
