"""Test-only network guard: any connection to a non-loopback address raises and is logged.

Put this directory on PYTHONPATH with SAFESERVE_NETGUARD_LOG=<file> and every Python process started
from there (the chain runner, papermill, each notebook kernel) imports it at start-up through the
``sitecustomize`` hook. Loopback stays open: Jupyter kernels talk to papermill over it. A library that
swallows the error (and falls back to a cache) is still caught, because the attempt is logged.
"""

from __future__ import annotations

import ipaddress
import os
import socket

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


class NetworkBlocked(OSError):
    """Raised instead of opening a network connection."""


def _is_local(host: object) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths and raw bytes addresses are not network traffic
    if host.lower() in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _record(what: str) -> None:
    log = os.environ.get("SAFESERVE_NETGUARD_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()} {what}\n")


def install() -> None:
    """Patch the socket module of this process (idempotent)."""
    if getattr(socket, "_safeserve_guarded", False):
        return
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def check(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0] if isinstance(address, tuple) else address
            if not _is_local(host):
                _record(f"connect {address!r}")
                raise NetworkBlocked(f"SafeServe network guard: blocked connection to {address!r}")

    def connect(self: socket.socket, address: object) -> None:
        check(self, address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        check(self, address)
        return real_connect_ex(self, address)

    def getaddrinfo(host: object, *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not _is_local(name):
            _record(f"resolve {name!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"SafeServe network guard: blocked lookup of {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.getaddrinfo = getaddrinfo  # type: ignore[assignment]
    socket._safeserve_guarded = True  # type: ignore[attr-defined]


if os.environ.get("SAFESERVE_NETGUARD_LOG"):
    install()
