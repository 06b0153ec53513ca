"""Does a public hostname resolve and serve a certificate a browser accepts (system CAs, name, dates)?"""

from __future__ import annotations

import socket
import ssl
from datetime import datetime, timedelta, timezone

from tools.verify.checks import Check

MIN_VALIDITY = timedelta(days=7)  # cert-manager renews 30 days ahead: a week left means renewal is failing


def hostname(host: str, now: datetime, timeout: float = 10.0, context: ssl.SSLContext | None = None) -> Check:
    name = f"https://{host}"
    try:
        addresses = sorted({info[4][0] for info in socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)})
    except socket.gaierror as err:
        return Check(name, False, f"does not resolve: {err}")
    context = context or ssl.create_default_context()  # verifies the chain and the hostname
    try:
        with socket.create_connection((host, 443), timeout=timeout) as sock:
            with context.wrap_socket(sock, server_hostname=host) as tls:
                cert = tls.getpeercert()
    except (ssl.SSLError, ssl.CertificateError) as err:
        return Check(name, False, f"resolves to {', '.join(addresses)}; invalid certificate: {err}")
    except OSError as err:
        return Check(name, False, f"resolves to {', '.join(addresses)}; no TLS on 443: {err}")
    expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), tz=timezone.utc)
    if expires - now < MIN_VALIDITY:
        return Check(name, False, f"certificate expires {expires:%Y-%m-%d} (renewal failing?)")
    return Check(name, True, f"{', '.join(addresses)}, certificate valid until {expires:%Y-%m-%d}")
