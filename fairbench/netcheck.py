"""Failing fast without a network: probe a download's hosts before trying it.

An unreachable host (no network, a firewall that drops packets, a resolver that never answers) stalls every
attempt for as long as the OS lets a connection try, and torchvision makes three per mirror (redirect check,
download, plain-http retry): half a minute or more before the error that says where to put the file by hand.
Probing every host at once, name lookup included, bounds that to CONNECT_TIMEOUT_S however many mirrors
there are; only hosts that answered are then downloaded from, each once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence

CONNECT_TIMEOUT_S = 5.0  # to open a connection (name lookup included)
READ_TIMEOUT_S = 60.0  # between two reads of a download that did connect


def endpoint(url: str) -> tuple[str, int]:
    """The (host, port) a request for `url` connects to: the proxy for its scheme when one is configured."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        via = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return via.hostname or "", via.port or 80
    return host, parts.port or (443 if parts.scheme == "https" else 80)


def probe(urls: Sequence[str], timeout: float | None = None) -> dict[str, str | None]:
    """{url: None when its host accepted a TCP connection within `timeout` seconds (CONNECT_TIMEOUT_S), else
    why not}. All hosts are tried at once in daemon threads, so the call returns within `timeout` even when a
    name lookup hangs (a socket timeout does not bound `getaddrinfo`)."""
    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    results: dict[str, str | None] = {}
    bugs: list[Exception] = []  # anything but a network error is raised here, in the caller's thread
    lock = threading.Lock()

    def attempt(url: str) -> None:
        host, port = endpoint(url)
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome = None
        except OSError as exc:
            outcome = f"cannot connect to {host}:{port} ({_reason(exc, timeout)})"
        except Exception as exc:  # noqa: BLE001 - handed to the caller below
            outcome = "probe failed"
            with lock:
                bugs.append(exc)
        with lock:
            results[url] = outcome

    unique = list(dict.fromkeys(urls))
    threads = [threading.Thread(target=attempt, args=(url,), daemon=True) for url in unique]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    with lock:
        done = dict(results)
        if bugs:
            raise bugs[0]
    out: dict[str, str | None] = {}
    for url in unique:
        host, port = endpoint(url)
        out[url] = done[url] if url in done else f"cannot connect to {host}:{port} (no answer within {timeout:g} s)"
    return out


def _reason(exc: OSError, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, socket.gaierror):
        return f"name not resolved: {exc.strerror or exc}"
    return exc.strerror or str(exc) or type(exc).__name__


def reachable(urls: Sequence[str], timeout: float | None = None) -> tuple[list[str], list[str]]:
    """(the urls whose host answered, in order; one 'url: why' per url whose host did not)."""
    found = probe(urls, timeout)
    return [u for u, why in found.items() if why is None], [f"{u}: {why}" for u, why in found.items() if why]


@contextlib.contextmanager
def read_timeout(seconds: float | None = None) -> Iterator[None]:
    """A default socket timeout for code that opens URLs without one (torchvision's downloads), so a download
    that stops sending fails instead of hanging; the previous default is restored after."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(READ_TIMEOUT_S if seconds is None else seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
