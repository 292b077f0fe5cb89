"""RSA key pairs for GitHub App tests: the private key envmatrix signs with (PEM text) and the
public key the sandbox verifies with, made once per test session (2048-bit RSA, as GitHub's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

APP_ID = 424242


@dataclass(frozen=True)
class AppKey:
    private_pem: str = field(repr=False)
    public_pem: str


@cache
def app_key(name: str = "app") -> AppKey:
    """A fresh key pair per `name` (another name: a key the sandbox does not know)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "BEGIN RSA PRIVATE KEY", as GitHub's
        serialization.NoEncryption(),
    ).decode("ascii")
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )
    return AppKey(private, public)
