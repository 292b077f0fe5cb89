"""TLS to Vault as the Vault CLI configures it: `VAULT_CACERT`, `VAULT_CAPATH`,
`VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY`, `VAULT_SKIP_VERIFY`, `VAULT_TLS_SERVER_NAME`.

`VaultTLS.from_environment(environ)` reads and checks them before any request (a missing or
unreadable file, a folder without certificates, a client certificate without its key: one
`UsageError` naming the variable). `VaultTLS.session()` is the `requests.Session` the Vault
adapter hands to hvac:

- the CA certificates (`VAULT_CACERT` wins over `VAULT_CAPATH`, as in the Vault CLI; every PEM
  file of the folder is loaded, no `c_rehash` needed) replace the default trust store;
- `VAULT_TLS_SERVER_NAME` is the name sent in SNI and the name the server's certificate must
  hold (urllib3's `server_hostname`; requests has no option for it, so a transport adapter sets
  it per connection pool);
- `VAULT_SKIP_VERIFY` (any true value, as Go's `strconv.ParseBool`) turns verification off.

`tls_failure_reason(error)` turns a TLS handshake failure into one line naming the variable to
set, from the failure's class and OpenSSL's reason code, never its full text.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from envmatrix.errors import UnsafeInput, UsageError
from envmatrix.safeio import read_regular_file
from envmatrix.settings import text_setting

_PEM_LIMIT = 4 * 1024 * 1024  # bytes read from one CA file
_CAPATH_FILES = 1000  # files looked at in VAULT_CAPATH
_PEM_CERTIFICATE = "-----BEGIN CERTIFICATE-----"
_TRUE = {"1", "t", "true", "y", "yes", "on"}  # strconv.ParseBool, plus the CLI's usual words
_FALSE = {"0", "f", "false", "n", "no", "off", ""}


@dataclass(frozen=True)
class VaultTLS:
    """How to talk TLS to Vault; every field is optional (default: the system trust store)."""

    ca_data: str | None = None  # PEM text of the trusted CA certificates
    ca_source: str = ""  # the variable the CA certificates came from, for messages
    client_cert: tuple[str, str] | None = None  # (certificate file, key file)
    skip_verify: bool = False
    server_name: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> VaultTLS:
        """The TLS settings from `environ`; raises UsageError naming a bad variable."""
        ca_file = text_setting(environ, "VAULT_CACERT")
        ca_dir = text_setting(environ, "VAULT_CAPATH")
        if ca_file:
            ca_data, source = _read_pem_file(ca_file, "VAULT_CACERT"), "VAULT_CACERT"
        elif ca_dir:
            ca_data, source = _read_pem_folder(ca_dir), "VAULT_CAPATH"
        else:
            ca_data, source = None, ""
        return cls(
            ca_data=ca_data,
            ca_source=source,
            client_cert=_client_cert(environ),
            skip_verify=_flag(environ, "VAULT_SKIP_VERIFY"),
            server_name=text_setting(environ, "VAULT_TLS_SERVER_NAME") or None,
        )

    def session(self) -> requests.Session:
        """A session that verifies (or not) and presents a client certificate as configured."""
        session = requests.Session()
        session.verify = not self.skip_verify
        if self.skip_verify:  # asked for: not a warning on every request
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        session.cert = self.client_cert
        if self.ca_data is not None or self.server_name is not None:
            session.mount("https://", _VaultHTTPAdapter(self.ca_data, self.server_name))
        return session


class _VaultHTTPAdapter(HTTPAdapter):
    """An HTTPS transport with our own CA certificates and TLS server name per connection pool."""

    def __init__(self, ca_data: str | None, server_name: str | None) -> None:
        self._ca_data, self._server_name = ca_data, server_name
        super().__init__()

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        if self._server_name is not None:
            pool_kwargs["server_hostname"] = self._server_name  # SNI and the name checked
        if self._ca_data is not None and verify is not False:
            pool_kwargs.pop("ca_certs", None)
            pool_kwargs.pop("ca_cert_dir", None)
            pool_kwargs["ca_cert_data"] = self._ca_data
        return host_params, pool_kwargs

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)
        if self._ca_data is not None and verify is not False:
            # requests points the pool at certifi's bundle: trust only the configured CAs
            conn.ca_certs = conn.ca_cert_dir = None


def _flag(environ: Mapping[str, str], name: str) -> bool:
    value = text_setting(environ, name).lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f"{name}={value!r} is not a boolean: use true or false (1 or 0)")


def _client_cert(environ: Mapping[str, str]) -> tuple[str, str] | None:
    cert, key = (
        text_setting(environ, "VAULT_CLIENT_CERT"),
        text_setting(environ, "VAULT_CLIENT_KEY"),
    )
    if not cert and not key:
        return None
    if not (cert and key):
        given, missing = (
            ("VAULT_CLIENT_CERT", "VAULT_CLIENT_KEY")
            if cert
            else (
                "VAULT_CLIENT_KEY",
                "VAULT_CLIENT_CERT",
            )
        )
        raise UsageError(f"{given} is set but {missing} is not: TLS client auth needs both files")
    for name, path in (("VAULT_CLIENT_CERT", cert), ("VAULT_CLIENT_KEY", key)):
        _read_pem_file(path, name, require_certificate=name == "VAULT_CLIENT_CERT")
    return cert, key


def _read_pem_file(path: str, name: str, require_certificate: bool = True) -> str:
    try:
        text = read_regular_file(Path(path).expanduser(), _PEM_LIMIT).decode("ascii", "replace")
    except UnsafeInput as exc:
        raise UsageError(f"{name}={path}: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{name}={path} cannot be read: {exc.strerror or exc}") from None
    if require_certificate and _PEM_CERTIFICATE not in text:
        raise UsageError(f"{name}={path} holds no PEM certificate ({_PEM_CERTIFICATE})")
    if not require_certificate and "PRIVATE KEY-----" not in text:
        raise UsageError(f"{name}={path} holds no PEM private key")
    return text


def _read_pem_folder(path: str) -> str:
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UsageError(f"VAULT_CAPATH={path} is not a folder (use VAULT_CACERT for one file)")
    texts = []
    for entry in sorted(folder.iterdir())[:_CAPATH_FILES]:
        if not entry.is_file():
            continue
        try:
            text = read_regular_file(entry, _PEM_LIMIT).decode("ascii", "replace")
        except (UnsafeInput, OSError):
            continue
        if _PEM_CERTIFICATE in text:
            texts.append(text)
    if not texts:
        raise UsageError(f"VAULT_CAPATH={path} holds no PEM certificate file")
    return "\n".join(texts)


def tls_failure_reason(error: requests.exceptions.SSLError, tls: VaultTLS, host: str) -> str:
    """One line for a failed TLS handshake with `host`, naming the variable to set."""
    cause = _ssl_cause(error)
    verify_code = getattr(cause, "verify_code", None)
    reason = (getattr(cause, "reason", None) or "").upper()
    trust = f"the CA certificates in {tls.ca_source}" if tls.ca_source else "the system trust store"
    if isinstance(cause, ssl.SSLCertVerificationError) and verify_code == 62:  # hostname
        name = tls.server_name or host
        return (
            f"TLS: Vault's certificate is not valid for {name!r}: set VAULT_TLS_SERVER_NAME to a "
            "name the certificate holds (or use that name in VAULT_ADDR)"
        )
    if isinstance(cause, ssl.SSLCertVerificationError):
        return (
            f"TLS: Vault's certificate is not trusted by {trust}: set VAULT_CACERT to the PEM file "
            "of the CA that signed it (or VAULT_CAPATH to a folder of them; VAULT_SKIP_VERIFY=true "
            "turns verification off, for tests only)"
        )
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return "TLS: the server at VAULT_ADDR does not speak TLS: use http:// in VAULT_ADDR"
    if "CERTIFICATE_REQUIRED" in reason or "HANDSHAKE_FAILURE" in reason or "UNKNOWN_CA" in reason:
        return (
            "TLS: Vault refused the handshake (it may require a client certificate): set "
            "VAULT_CLIENT_CERT and VAULT_CLIENT_KEY to a certificate it accepts"
        )
    if "KEY_VALUES_MISMATCH" in reason or "PEM" in reason or "KEY" in reason:
        return (
            "TLS: the client certificate cannot be used: check that VAULT_CLIENT_CERT and "
            "VAULT_CLIENT_KEY are a matching certificate and unencrypted key"
        )
    return (
        f"TLS handshake failed ({reason.lower() or type(cause).__name__}): check VAULT_CACERT, "
        "VAULT_CLIENT_CERT/VAULT_CLIENT_KEY and VAULT_TLS_SERVER_NAME"
    )


def _ssl_cause(error: BaseException) -> BaseException:
    """The `ssl.SSLError` under requests' and urllib3's wrappers, else `error` itself."""
    seen: BaseException | None = error
    for _ in range(8):
        if seen is None:
            break
        if isinstance(seen, ssl.SSLError):
            return seen
        nested = seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None
        seen = nested or getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
    return error
