"""Registering platforms: the checks of a registration, and the instructors' page that makes
one (with errors by field), edits and disables it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from grader.lti import registry
from tests.integration.web_fixtures import World, client, csrf_in, log_in

GOOD = {
    "name": "Canvas of the faculty",
    "issuer": "https://canvas.instructure.com",
    "client_id": "10000000000001",
    "deployment_ids": "1:abc\n2:def",
    "auth_login_url": "https://sso.canvaslms.com/api/lti/authorize_redirect",
    "auth_token_url": "https://sso.canvaslms.com/login/oauth2/token",
    "key_set_url": "https://sso.canvaslms.com/api/lti/security/jwks",
    "auth_audience": "",
}


def test_a_good_registration_is_cleaned_up() -> None:
    checked = registry.check(
        registry.PlatformForm(**{**GOOD, "deployment_ids": " 1:abc, 2:def \n", "name": ""})
    )
    assert checked.deployment_ids == ["1:abc", "2:def"]
    assert checked.name == "canvas.instructure.com"
    assert checked.auth_audience is None


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("issuer", "", "enter the platform's issuer"),
        ("issuer", "canvas.instructure.com", "must be a full URL"),
        ("issuer", "http://canvas.instructure.com", "must use https://"),
        ("client_id", "", "enter the client id"),
        ("client_id", "has spaces", "no spaces"),
        ("deployment_ids", " \n ", "at least one deployment id"),
        ("deployment_ids", "1\n1", "listed twice"),
        ("auth_login_url", "ftp://lms.example/auth", "must be a full URL"),
        ("auth_token_url", "", "access token URL"),
        ("key_set_url", "https://user:pw@lms.example/jwks", "user name or password"),
    ],
)
def test_a_wrong_field_is_named(field: str, value: str, says: str) -> None:
    with pytest.raises(registry.RegistrationError) as refused:
        registry.check(registry.PlatformForm(**{**GOOD, field: value}))
    assert list(refused.value.problems) == [field]
    assert says in refused.value.problems[field]


def test_http_is_accepted_on_loopback_only() -> None:
    local = registry.check(registry.PlatformForm(**{**GOOD, "issuer": "http://localhost:8000"}))
    assert local.issuer == "http://localhost:8000"


def _register(c: TestClient, csrf: str, **changes: str) -> object:
    return c.post("/instructor/lti", data={**GOOD, **changes, "csrf": csrf})


def test_the_registration_page(web: World) -> None:
    with client(web.app) as c:
        csrf = log_in(c, web.instructor)
        page = c.get("/instructor/lti")
        assert page.status_code == 200
        assert 'id="no-platforms"' in page.text
        assert "http://testserver/lti/login" in page.text  # the tool's configuration, to paste

        wrong = c.post(
            "/instructor/lti", data={**GOOD, "issuer": "canvas", "deployment_ids": "", "csrf": csrf}
        )
        assert wrong.status_code == 422
        assert 'id="problem-issuer"' in wrong.text and 'id="problem-deployment_ids"' in wrong.text
        assert 'value="10000000000001"' in wrong.text  # what was typed is kept
        assert registry.platforms(web.factory) == []

        added = c.post("/instructor/lti", data={**GOOD, "csrf": csrf})
        assert added.status_code == 303
        [row] = registry.platforms(web.factory)
        assert (row.issuer, row.client_id, row.deployment_ids) == (
            GOOD["issuer"],
            GOOD["client_id"],
            ["1:abc", "2:def"],
        )
        listed = c.get("/instructor/lti")
        assert "Canvas of the faculty" in listed.text and "Registered Canvas of the faculty" in listed.text

        twice = c.post("/instructor/lti", data={**GOOD, "csrf": csrf})
        assert twice.status_code == 422 and "registered already" in twice.text

        edit = c.get(f"/instructor/lti/{row.id}")
        assert edit.status_code == 200 and "1:abc\n2:def" in edit.text
        saved = c.post(f"/instructor/lti/{row.id}", data={**GOOD, "deployment_ids": "3:ghi", "csrf": csrf})
        assert saved.status_code == 303
        assert registry.platforms(web.factory)[0].deployment_ids == ["3:ghi"]
        bad_edit = c.post(f"/instructor/lti/{row.id}", data={**GOOD, "key_set_url": "", "csrf": csrf})
        assert bad_edit.status_code == 422 and 'id="problem-key_set_url"' in bad_edit.text

        disabled = c.post(f"/instructor/lti/{row.id}/enabled", data={"enabled": "0", "csrf": csrf})
        assert disabled.status_code == 303
        assert registry.platforms(web.factory)[0].enabled is False
        assert c.get("/instructor/lti/999").status_code == 404

        forged = c.post("/instructor/lti", data={**GOOD, "client_id": "other", "csrf": "wrong"})
        assert forged.status_code == 403


def test_students_cannot_register_platforms(web: World) -> None:
    with client(web.app) as c:
        log_in(c, web.student)
        assert c.get("/instructor/lti").status_code == 403
        csrf = csrf_in(c.get("/account").text)
        assert c.post("/instructor/lti", data={**GOOD, "csrf": csrf}).status_code == 403
    assert registry.platforms(web.factory) == []
