"""TLS for the emulator: test certificates from a private CA, and the server's ``ssl.SSLContext``.

:func:`make_test_certificates` writes a private CA and a server certificate it signed (for
``127.0.0.1``, ``::1`` and ``localhost`` by default) as PEM files; a client trusts the CA file
only, as it would trust a company's private CA. It needs ``cryptography`` (installed with
Airflow), imported only when certificates are made: the emulator itself stays importable with
the standard library alone.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import os
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from cryptography.x509 import KeyUsage

__all__ = ["DEFAULT_HOSTNAMES", "TLSFiles", "make_test_certificates", "server_context"]

#: The names a test certificate is valid for by default: the loopback addresses and ``localhost``.
DEFAULT_HOSTNAMES: tuple[str, ...] = ("127.0.0.1", "::1", "localhost")

_VALID_FOR = datetime.timedelta(days=30)
_CLOCK_SKEW = datetime.timedelta(days=1)


@dataclasses.dataclass(frozen=True)
class TLSFiles:
    """The PEM files a TLS server serves with, and the CA file its clients trust.

    :param certfile: the server's certificate (the leaf; a chain may follow it in the same file).
    :param keyfile: the server certificate's private key, unencrypted.
    :param ca_file: the CA certificate that signed ``certfile``; None when unknown (given certificates).
    """

    certfile: Path
    keyfile: Path
    ca_file: Path | None = None


def make_test_certificates(folder: Path, hostnames: Sequence[str] = DEFAULT_HOSTNAMES) -> TLSFiles:
    """Make a private CA and a server certificate it signed for ``hostnames``; write them to ``folder``.

    Writes ``ca.pem`` (the self-signed CA, ``CA:TRUE``), ``server.pem`` and ``server-key.pem``
    (mode 0600). The CA's private key is not written: nothing else can be signed with it. Keys are
    ECDSA P-256; the certificates are valid from a day ago for 30 days.

    :param folder: where the files go (created if missing; files of the same names are replaced).
    :param hostnames: the names the server certificate is valid for: IP addresses become IP
        subject alternative names, any other name a DNS one.
    :return: the paths of the three files.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    if not hostnames:
        raise ValueError("hostnames must name at least one host")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "FollowAnalytics emulator test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for name in hostnames:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            names.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + _VALID_FOR)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    folder.mkdir(parents=True, exist_ok=True)
    files = TLSFiles(certfile=folder / "server.pem", keyfile=folder / "server-key.pem", ca_file=folder / "ca.pem")
    assert files.ca_file is not None
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_private(files.keyfile, key_pem)
    return files


def _key_usage(*, cert_sign: bool) -> KeyUsage:
    """The key usage of a CA (``cert_sign``: signs certificates and CRLs) or of an ECDSA server key."""
    from cryptography import x509

    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (mode 0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def server_context(files: TLSFiles) -> ssl.SSLContext:
    """A server-side ``ssl.SSLContext`` (TLS 1.2 or later) serving ``files``' certificate and key.

    :param files: the certificate and key to serve.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.certfile, files.keyfile)
    return context
