"""The tool's signing keys for LTI 1.3: RSA keys, each named by its `kid`, kept in the data
directory (mode 0600), one of them current.

The current key signs what the tool sends platforms (deep-linking responses, the client
assertions that buy service tokens). Every kept key is published in the tool's JWKS, so after a
rotation platforms that cached the old set still verify what was signed a moment before; an
old key is retired (removed) once platforms have had time to fetch the new set.

    <data_dir>/lti/keys/<kid>.pem     PKCS#8 private key, 0600
    <data_dir>/lti/keys/current       the kid that signs
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

KEY_BITS = 2048
_KID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class KeyStoreError(Exception):
    """The key store cannot be used (unreadable, a key missing); the message says what to do."""


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass(frozen=True)
class ToolKey:
    kid: str
    private_pem: str

    @property
    def private_key(self) -> rsa.RSAPrivateKey:
        key = serialization.load_pem_private_key(self.private_pem.encode(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        return key

    @property
    def public_pem(self) -> str:
        return (
            self.private_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def jwk(self) -> dict[str, str]:
        """The public key as a JWK (RFC 7517), with its kid, for signatures (RS256)."""
        numbers = self.private_key.public_key().public_numbers()
        return {
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "e": _b64(numbers.e),
            "n": _b64(numbers.n),
        }


def thumbprint(key: rsa.RSAPrivateKey) -> str:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url): a kid that names the key itself."""
    numbers = key.public_key().public_numbers()
    canonical = json.dumps({"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


class KeyStore:
    """The keys in `<data_dir>/lti/keys`."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "lti" / "keys"

    def _path(self, kid: str) -> Path:
        if not _KID.match(kid):
            raise KeyStoreError(f"{kid!r} is not a key id of this tool")
        return self.directory / f"{kid}.pem"

    def kids(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.pem") if _KID.match(p.stem))

    def load(self, kid: str) -> ToolKey:
        path = self._path(kid)
        try:
            return ToolKey(kid=kid, private_pem=path.read_text())
        except OSError as exc:
            raise KeyStoreError(f"the LTI key {kid} cannot be read ({exc.strerror}): {path}") from None

    def current_kid(self) -> str | None:
        try:
            kid = (self.directory / "current").read_text().strip()
        except FileNotFoundError:
            return None
        return kid if kid in self.kids() else None

    def current(self) -> ToolKey:
        """The signing key, made on first use."""
        kid = self.current_kid()
        if kid is None:
            return self.rotate()
        return self.load(kid)

    def rotate(self) -> ToolKey:
        """Make a new key and sign with it from now on; the old ones stay published."""
        private = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        kid = thumbprint(private)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        _write_private(self._path(kid), pem)
        _write_private(self.directory / "current", kid + "\n")
        return ToolKey(kid=kid, private_pem=pem)

    def retire(self, kid: str) -> None:
        """Stop publishing (and keeping) an old key; the current one cannot be retired."""
        if kid == self.current_kid():
            raise KeyStoreError(f"{kid} is the key that signs now: rotate first, then retire it")
        path = self._path(kid)
        if not path.exists():
            raise KeyStoreError(f"there is no LTI key {kid} (kept: {', '.join(self.kids()) or 'none'})")
        path.unlink()

    def jwks(self) -> dict[str, Any]:
        """The public key set platforms fetch: every kept key, the current one first."""
        current = self.current()
        others = [self.load(kid) for kid in self.kids() if kid != current.kid]
        return {"keys": [current.jwk(), *(key.jwk() for key in others)]}


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600 from the start, replacing it atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(temporary, path)
