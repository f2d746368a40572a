"""The tool's LTI keys: private at rest, named by their thumbprint, and still published after a
rotation until retired."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest

from grader.lti.keys import KeyStore, KeyStoreError


def test_the_first_key_is_made_on_use_and_kept_private(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    assert store.kids() == [] and store.current_kid() is None
    key = store.current()
    assert store.kids() == [key.kid] and store.current().kid == key.kid  # made once
    path = tmp_path / "lti" / "keys" / f"{key.kid}.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "PRIVATE KEY" in path.read_text()


def test_what_the_key_signs_verifies_with_its_published_jwk(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    key = store.current()
    token = jwt.encode(
        {"iss": "tool", "exp": int(time.time()) + 60}, key.private_pem, "RS256", headers={"kid": key.kid}
    )
    [published] = store.jwks()["keys"]
    assert published["kid"] == key.kid and "d" not in published  # the public half only
    public = jwt.PyJWK(published).key
    assert jwt.decode(token, public, algorithms=["RS256"])["iss"] == "tool"
    other = KeyStore(tmp_path / "other").current()
    forged = jwt.encode({"iss": "tool"}, other.private_pem, "RS256", headers={"kid": key.kid})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, public, algorithms=["RS256"])


def test_rotation_keeps_the_old_key_published_until_it_is_retired(tmp_path: Path) -> None:
    store = KeyStore(tmp_path)
    old = store.current()
    new = store.rotate()
    assert new.kid != old.kid and store.current().kid == new.kid
    assert [k["kid"] for k in store.jwks()["keys"]] == [new.kid, old.kid]  # the signing key first
    with pytest.raises(KeyStoreError, match="signs now"):
        store.retire(new.kid)
    store.retire(old.kid)
    assert [k["kid"] for k in store.jwks()["keys"]] == [new.kid]
    with pytest.raises(KeyStoreError, match="there is no LTI key"):
        store.retire(old.kid)
    with pytest.raises(KeyStoreError, match="not a key id"):
        store.load("../../etc/passwd")
