"""Outbound URL safety (SSRF): the service fetches URLs strangers give it.

Two layers:

- :func:`check_url` at the edge (API submission, webhook registration): scheme,
  credentials, host lists, and every address the host resolves to.
- :func:`guarded` around every outbound fetch (yt-dlp downloads, webhook
  POSTs): while active, the thread's ``socket.getaddrinfo`` refuses unsafe
  addresses, so each connection is checked with the address it really uses:
  after every redirect, and after DNS re-resolution (rebinding) too.

Refused: loopback, private, link-local (the instance metadata address
169.254.169.254 included), multicast, reserved, unspecified, shared (CGNAT)
and site-local addresses, in IPv4 and IPv6 (IPv4-mapped, 6to4, Teredo and
NAT64 forms unwrapped), however the host spells them (decimal, octal, hex).
The local runtime allows loopback by configuration; the deployed default does not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ytcaption.domain.errors import UnsafeUrl

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class UrlPolicy:
    allow_loopback: bool = False
    allow_private: bool = False
    #: Hosts always allowed (exact names, or ``.example.com`` for a domain).
    allowed_hosts: tuple[str, ...] = ()
    #: Hosts always refused (same forms, ``*`` for every host: no outbound fetches); checked first.
    denied_hosts: tuple[str, ...] = field(default=("metadata.google.internal",))
    #: Loopback ports never reached, whatever else is allowed: the local runtime's own
    #: API and AWS endpoint (a webhook to ``/moto-api/reset`` would wipe its state).
    denied_loopback_ports: frozenset[int] = frozenset()

    @classmethod
    def from_settings(cls, settings: Any) -> UrlPolicy:
        return cls(
            allow_loopback=bool(getattr(settings, "allow_loopback_urls", False)),
            allow_private=bool(getattr(settings, "allow_private_urls", False)),
            allowed_hosts=tuple(_split(getattr(settings, "allowed_url_hosts", ""))),
            denied_hosts=("metadata.google.internal", *_split(getattr(settings, "denied_url_hosts", ""))),
            denied_loopback_ports=frozenset(
                int(p) for p in _split(getattr(settings, "denied_loopback_ports", "")) if p.isdigit()),
        )


def _split(value: str | list[str] | tuple[str, ...]) -> list[str]:
    if isinstance(value, list | tuple):
        return [v.strip().lower() for v in value if v.strip()]
    return [v.strip().lower() for v in str(value or "").split(",") if v.strip()]


def _host_matches(host: str, patterns: tuple[str, ...]) -> bool:
    host = host.lower().rstrip(".")
    return any(p == "*" or host == p or (p.startswith(".") and (host.endswith(p) or host == p[1:])) for p in patterns)


def _unwrap(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip.teredo is not None:
            return ip.teredo[1]
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def endpoint_problem(address: str, port: Any, policy: UrlPolicy, *, trusted: bool = False) -> str | None:
    """As :func:`address_problem`, for an address and port (the runtime's own ports refused)."""
    problem = address_problem(address, policy, trusted=trusted)
    if problem is None and policy.denied_loopback_ports and str(port).isdigit() \
            and int(port) in policy.denied_loopback_ports:
        try:
            if _unwrap(ipaddress.ip_address(address.split("%", 1)[0])).is_loopback:
                return "the local runtime's own port"
        except ValueError:
            pass
    return problem


def address_problem(address: str, policy: UrlPolicy, *, trusted: bool = False) -> str | None:
    """Why connecting to ``address`` is not allowed, or None if it is.

    ``trusted``: the host is named in the allow list, so loopback and private
    addresses are fine for it; link-local (instance metadata), multicast,
    reserved and unspecified addresses never are, whatever the lists say.
    """
    try:
        ip = _unwrap(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return "not an IP address"
    if trusted:
        policy = UrlPolicy(allow_loopback=True, allow_private=True,
                           denied_loopback_ports=policy.denied_loopback_ports)
    if ip.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address (instance metadata lives there)"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return None if policy.allow_private else "a shared (carrier-grade NAT) address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local:
        return None if policy.allow_private else "a site-local address"
    if ip.is_private or not ip.is_global:
        return None if policy.allow_private else "a private address"
    return None


def _trusted(host: str, policy: UrlPolicy) -> bool:
    """Named in the allow list (``*`` names no host: it never switches the IP rules off)."""
    return _host_matches(host, tuple(p for p in policy.allowed_hosts if p != "*"))


def _resolve(host: str, port: int) -> list[str]:
    infos = _real_getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def check_url(url: str, policy: UrlPolicy, *, resolve: bool = True) -> None:
    """Refuse ``url`` (UnsafeUrl) unless it is http(s), credential-free and points
    only at addresses the policy allows. Hosts that do not resolve pass: the
    fetch will fail on its own, and the connection guard still applies."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl("the URL is not valid") from exc
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("only http and https URLs are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeUrl("URLs with credentials are not allowed")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in parts.netloc):
        raise UnsafeUrl("the host name is not valid")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("the URL has no host")
    try:
        host.encode("idna")
    except UnicodeError as exc:
        raise UnsafeUrl("the host name is not valid") from exc
    if _host_matches(host, policy.denied_hosts):
        raise UnsafeUrl(f"the host {host} is not allowed")
    trusted = _trusted(host, policy)
    literal = _literal_ip(host)
    effective_port = port or (443 if parts.scheme == "https" else 80)
    if literal is not None:
        problem = endpoint_problem(literal, effective_port, policy, trusted=trusted)
        if problem:
            raise UnsafeUrl(f"the URL points at {problem}")
        return
    if not resolve:
        return
    try:
        addresses = _resolve(host, effective_port)
    except (OSError, UnicodeError, ValueError):
        return
    for address in addresses:
        problem = endpoint_problem(address, effective_port, policy, trusted=trusted)
        if problem:
            raise UnsafeUrl(f"the host {host} resolves to {problem}")


def _literal_ip(host: str) -> str | None:
    """The address a numeric host means, in any spelling C's inet_aton accepts."""
    h = host.strip("[]")
    try:
        return str(ipaddress.ip_address(h.split("%", 1)[0]))
    except ValueError:
        pass
    try:
        return socket.inet_ntoa(socket.inet_aton(h))  # 2130706433, 0x7f.1, 017700000001 ...
    except OSError:
        return None


# --- the connection guard ---------------------------------------------------------------------

_real_getaddrinfo = socket.getaddrinfo
_local = threading.local()
_install_lock = threading.Lock()


def _guarded_getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
    infos = _real_getaddrinfo(host, port, *args, **kwargs)
    policy: UrlPolicy | None = getattr(_local, "policy", None)
    if policy is None or host is None:
        return infos
    name = host.decode() if isinstance(host, bytes) else str(host)
    if _host_matches(name, policy.denied_hosts):
        raise UnsafeUrl(f"the host {name} is not allowed")
    trusted = _trusted(name, policy)
    for info in infos:
        # not the port rule: the runtime's own AWS calls run inside the guard too (a redirect
        # to its ports meets the API key and the AWS endpoint's secret instead)
        problem = address_problem(str(info[4][0]), policy, trusted=trusted)
        if problem:
            raise UnsafeUrl(f"refused to connect to {name}: {problem}")
    return infos


def _install() -> None:
    with _install_lock:
        if socket.getaddrinfo is not _guarded_getaddrinfo:
            socket.getaddrinfo = _guarded_getaddrinfo
        if not _in_chain(threading.Thread.start):
            # wrap the hook in place now, never the one seen at import: another hook installed
            # since (the local runtime's IAM principal, which threads inherit the same way)
            # must keep working
            _inheriting_start.__wrapped__ = threading.Thread.start  # type: ignore[attr-defined]
            threading.Thread.start = _inheriting_start  # type: ignore[method-assign]


def _in_chain(start: Any) -> bool:
    """Whether ``Thread.start`` already passes through the guard's hook (hooks that wrap
    another name it in ``__wrapped__``)."""
    for _ in range(32):
        if start is _inheriting_start:
            return True
        start = getattr(start, "__wrapped__", None)
        if start is None:
            return False
    return False


def _inheriting_start(self: threading.Thread) -> None:
    """A thread started inside a guarded block is guarded too (yt-dlp and HTTP
    libraries may fetch from worker threads)."""
    policy = getattr(_local, "policy", None)
    if policy is not None:
        run = self.run

        def run_guarded() -> None:
            _local.policy = policy
            run()

        self.run = run_guarded  # type: ignore[method-assign]
    _inheriting_start.__wrapped__(self)  # type: ignore[attr-defined]


_inheriting_start.__wrapped__ = threading.Thread.start  # type: ignore[attr-defined]


def proxy_problem() -> str | None:
    """Why fetching is refused in this environment: with ``HTTP(S)_PROXY`` set the
    connection goes to the proxy, which resolves the real target where the guard
    cannot see it. ``NO_PROXY=*`` (proxies never used) is fine."""
    import urllib.request

    proxies = {k: v for k, v in urllib.request.getproxies().items() if k != "no" and v}
    if not proxies:
        return None
    no_proxy = (os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or "").strip()
    if no_proxy == "*":
        return None
    return (f"outbound fetches refuse to run through a proxy ({', '.join(sorted(proxies))}_proxy is set): "
            "the guard cannot check the addresses a proxy connects to; unset it or set NO_PROXY=*")


@contextlib.contextmanager
def guarded(policy: UrlPolicy) -> Iterator[None]:
    """Inside the block, this thread (and threads it starts) connects only to
    addresses the policy allows."""
    problem = proxy_problem()
    if problem:
        raise UnsafeUrl(problem)
    _install()
    previous = getattr(_local, "policy", None)
    _local.policy = policy
    try:
        yield
    finally:
        _local.policy = previous
