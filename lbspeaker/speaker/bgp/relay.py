"""The helper exabgp runs as its API process: it splices exabgp's stdin/stdout onto the driver's socket.

exabgp only talks to processes it starts itself, so the driver cannot hold exabgp's API pipes
directly. This script (stdlib only, run with ``python -I``) connects to the driver's Unix socket
and copies bytes both ways. Invariant: it exits as soon as either side closes, so a dead driver
never leaves exabgp talking to nobody, and a dead exabgp closes the driver's connection.
"""

from __future__ import annotations

import os
import socket
import sys
import threading


def _pump_in(sock: socket.socket) -> None:
    """exabgp -> driver."""
    while True:
        data = os.read(0, 65536)
        if not data:
            break
        sock.sendall(data)
    os._exit(0)


def main(argv: list[str]) -> int:
    """Connect to argv[1] and splice until one side closes."""
    if len(argv) != 2:
        sys.stderr.write("usage: relay.py SOCKET\n")
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(argv[1])
    threading.Thread(target=_pump_in, args=(sock,), daemon=True).start()
    while True:
        data = sock.recv(65536)
        if not data:
            break
        view = memoryview(data)
        while view:
            n = os.write(1, view)
            view = view[n:]
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
