"""The tool's published keys and configuration: /lti/jwks (and key rotation through
`grader lti key`), /lti/config in its three forms."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jwt

from grader.lti.keys import KeyStore
from tests.lti.conftest import LtiWorld

GRADER = Path(sys.executable).parent / "grader"


def grader_lti(world: LtiWorld, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env["GRADER_DATA_DIR"] = str(world.data_dir)
    return subprocess.run(
        [str(GRADER), "lti", "key", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def kids(world: LtiWorld) -> list[str]:
    with world.client() as client:
        response = client.get("/lti/jwks")
    assert response.status_code == 200
    keys = response.json()["keys"]
    for key in keys:
        assert set(key) == {"kty", "alg", "use", "kid", "e", "n"}  # public parts only
        assert (key["kty"], key["alg"], key["use"]) == ("RSA", "RS256", "sig")
        jwt.PyJWK(key)  # a usable key
    return [key["kid"] for key in keys]


def test_the_jwks_publishes_the_signing_key(world: LtiWorld) -> None:
    published = kids(world)
    assert published[0] == KeyStore(world.data_dir).current().kid


def test_rotation_keeps_the_old_key_published_until_it_is_retired(world: LtiWorld) -> None:
    old = kids(world)[0]
    rotated = grader_lti(world, "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new = KeyStore(world.data_dir).current_kid()
    assert new is not None and new != old and f"signing with {new}" in rotated.stdout
    assert kids(world)[:2] == [new, old]  # the new key signs, the old one still verifies
    listed = grader_lti(world, "list")
    assert f"{new}  signing" in listed.stdout and f"{old}  published, not signing" in listed.stdout

    refused = grader_lti(world, "retire", new)
    assert refused.returncode == 2 and "rotate first" in refused.stderr
    assert new in kids(world)

    retired = grader_lti(world, "retire", old)
    assert retired.returncode == 0, retired.stderr
    assert old not in kids(world) and kids(world)[0] == new
    unknown = grader_lti(world, "retire", old)
    assert unknown.returncode == 2 and "there is no LTI key" in unknown.stderr


def test_the_config_names_every_url_an_lms_needs(world: LtiWorld) -> None:
    base = world.tool_url
    with world.client() as client:
        config = client.get("/lti/config").json()
        canvas = client.get("/lti/config", params={"format": "canvas"}).json()
        text = client.get("/lti/config", params={"format": "text"})
        wrong = client.get("/lti/config", params={"format": "xml"})
    assert config["oidc_initiation_url"] == f"{base}/lti/login"
    assert config["target_link_uri"] == config["deep_linking_url"] == f"{base}/lti/launch"
    assert config["redirect_uris"] == [f"{base}/lti/launch"]
    assert config["jwks_uri"] == f"{base}/lti/jwks"
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in config["scopes"]
    assert "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly" in config["scopes"]
    assert {p["message_type"] for p in config["placements"]} == {"LtiDeepLinkingRequest"}
    assert config["https_required"] is True

    assert canvas["public_jwk_url"] == f"{base}/lti/jwks"
    assert canvas["oidc_initiation_url"] == f"{base}/lti/login"
    [extension] = canvas["extensions"]
    assert extension["platform"] == "canvas.instructure.com" and extension["privacy_level"] == "public"
    assert {p["placement"] for p in extension["settings"]["placements"]} == {
        "link_selection",
        "assignment_selection",
    }

    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    for url in (f"{base}/lti/login", f"{base}/lti/launch", f"{base}/lti/jwks"):
        assert url in text.text
    assert wrong.status_code == 422


def test_platforms_are_registered_and_listed_from_the_command_line(world: LtiWorld) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRADER_")}
    env["GRADER_DATA_DIR"] = str(world.data_dir)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(GRADER), "lti", "platform", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)

    urls = [
        "--auth-login-url=https://moodle.example/mod/lti/auth.php",
        "--auth-token-url=https://moodle.example/mod/lti/token.php",
        "--key-set-url=https://moodle.example/mod/lti/certs.php",
    ]
    bad = run("add", "--issuer=moodle.example", "--client-id=abc", "--deployment-id=1", *urls)
    assert bad.returncode == 2 and "issuer: the issuer must be a full URL" in bad.stderr
    good = run(
        "add",
        "--issuer=https://moodle.example",
        "--client-id=abc",
        "--deployment-id=1",
        "--name=Moodle",
        *urls,
    )
    assert good.returncode == 0, good.stderr
    listed = run("list")
    assert "Moodle  iss=https://moodle.example  client_id=abc  deployments=1  enabled" in listed.stdout
    assert "Fake LMS" in listed.stdout
