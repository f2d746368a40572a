"""LTI 1.3 launches against the fake platform, over HTTPS on loopback: a student lands on the
concept page signed in, and every launch the tool must refuse is refused with a page that says
why (and the right status), never a traceback."""

from __future__ import annotations

import html
import re
import time
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from sqlalchemy import select

from grader.lti import registry
from grader.lti.records import teaches
from grader.store import LtiContext, LtiResourceLink, LtiUser, Role, User
from tests.lti.conftest import LtiWorld
from tests.lti.fake_platform import AGS, CLAIM, STUDENT, TEACHER, Person, SigningKey

FORM_FIELD = re.compile(r'name="(id_token|state)" value="([^"]*)"')


def start_login(client: httpx.Client, world: LtiWorld, hint: str, **extra: str) -> dict[str, str]:
    """The platform's login initiation at the tool; the parameters the tool sends the browser
    to the platform's authorization endpoint with."""
    response = client.get("/lti/login", params=world.platform.login_params(hint, **extra))
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(world.platform.auth_url + "?")
    return dict(parse_qsl(urlsplit(location).query))


def authorize_over_http(client: httpx.Client, world: LtiWorld, params: dict[str, str]) -> dict[str, str]:
    """The platform's authorization endpoint, as the browser calls it: the form it answers."""
    page = httpx.get(world.platform.auth_url, params=params, verify=world.tls, timeout=30)
    assert page.status_code == 200, page.text
    fields = {name: html.unescape(value) for name, value in FORM_FIELD.findall(page.text)}
    assert f'action="{world.tool_url}/lti/launch"' in page.text
    return fields


def launch(client: httpx.Client, world: LtiWorld, hint: str, **headers: str) -> httpx.Response:
    params = start_login(client, world, hint)
    answer = world.platform.authorize(params)
    return client.post(
        "/lti/launch", data={"id_token": answer.id_token, "state": answer.state}, headers=headers
    )


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text[:2000]
    assert f'data-refusal="{code}"' in response.text, response.text[:2000]
    assert 'id="admin-hint"' in response.text
    assert "Traceback" not in response.text


def test_a_student_launch_lands_on_the_concept_page_signed_in(world: LtiWorld) -> None:
    lineitem = f"{world.platform.lineitems_url()}/7"
    hint = world.platform.resource_launch(
        STUDENT, concept="causal-masking", link_id="link-student", lineitem=lineitem
    )
    with world.client() as client:
        params = start_login(client, world, hint)
        # the state and session cookies a launch from inside an LMS needs
        cookies = [c for c in client.cookies.jar]
        assert {c.name for c in cookies} >= {"lti1p3-session-id", f"lti1p3-{params['state']}"}
        assert all(c.secure and c.path == "/lti/" for c in cookies)
        form = authorize_over_http(client, world, params)
        response = client.post("/lti/launch", data=form)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/concepts/causal-masking"
        page = client.get("/concepts/causal-masking")
        assert page.status_code == 200
        assert "Grace Hopper" in page.text
        assert 'action="/concepts/causal-masking/submissions"' in page.text

    with world.factory() as session:
        person = session.scalar(select(LtiUser).where(LtiUser.sub == STUDENT.sub))
        assert person is not None and person.issuer == world.platform.issuer
        user = session.get(User, person.user_id)
        assert user is not None and user.role == Role.STUDENT and user.email is None
        assert person.email == STUDENT.email and person.roles == STUDENT.roles
        context = session.scalar(select(LtiContext).where(LtiContext.context_id == world.platform.context_id))
        assert context is not None
        assert context.memberships_url and context.memberships_url.endswith("/memberships")
        assert context.lineitems_url == world.platform.lineitems_url()
        link = session.scalar(
            select(LtiResourceLink).where(LtiResourceLink.resource_link_id == "link-student")
        )
        assert link is not None
        assert (link.concept, link.lineitem_url, link.context_pk) == ("causal-masking", lineitem, context.id)
        assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in link.ags_scopes


def test_a_second_launch_signs_in_the_same_user(world: LtiWorld) -> None:
    person = Person(f"again-{uuid.uuid4().hex[:6]}", "Ada Again", "ada@lms.example", STUDENT.roles)
    for _ in range(2):
        with world.client() as client:
            assert launch(client, world, world.platform.resource_launch(person)).status_code == 303
    with world.factory() as session:
        rows = list(session.scalars(select(LtiUser).where(LtiUser.sub == person.sub)))
        assert len(rows) == 1
        user = session.get(User, rows[0].user_id)
        assert user is not None and user.name.startswith("Ada Again (Fake LMS ")


def test_an_lms_instructor_gets_no_site_wide_instructor_rights(world: LtiWorld) -> None:
    with world.client() as client:
        response = launch(client, world, world.platform.resource_launch(TEACHER, link_id="link-teacher"))
        assert response.status_code == 303
        assert client.get("/concepts/causal-masking").status_code == 200
        assert client.get("/instructor/exercises").status_code == 403
        assert client.get("/instructor/lti").status_code == 403


def test_the_launch_cookies_are_samesite_none_secure_and_partitioned(world: LtiWorld) -> None:
    hint = world.platform.resource_launch(STUDENT)
    with world.client() as client:
        response = client.get("/lti/login", params=world.platform.login_params(hint))
    headers = response.headers.get_list("set-cookie")
    assert len(headers) == 2
    for header in headers:
        lowered = header.lower()
        for attribute in ("samesite=none", "secure", "httponly", "partitioned", "path=/lti/"):
            assert attribute in lowered, header


# refusals


def test_a_replayed_launch_is_refused(world: LtiWorld) -> None:
    with world.client() as client:
        params = start_login(client, world, world.platform.resource_launch(STUDENT))
        answer = world.platform.authorize(params)
        data = {"id_token": answer.id_token, "state": answer.state}
        assert client.post("/lti/launch", data=data).status_code == 303
        assert_refused(client.post("/lti/launch", data=data), 403, "replay")


def relaunch(
    world: LtiWorld, change: Any, key: SigningKey | None = None, state: str | None = None
) -> httpx.Response:
    """A launch whose signed claims are changed by `change(claims)` (and signed by `key`)."""
    with world.client() as client:
        params = start_login(client, world, world.platform.resource_launch(STUDENT))
        answer = world.platform.authorize(params)
        claims = dict(answer.claims)
        change(claims)
        token = world.platform.sign(claims, key)
        return client.post("/lti/launch", data={"id_token": token, "state": state or answer.state})


def test_a_forged_signature_is_refused(world: LtiWorld) -> None:
    forger = SigningKey.new(kid=world.platform.key.kid)  # the platform's kid, another key
    assert_refused(relaunch(world, lambda c: None, key=forger), 403, "signature")


def test_a_key_the_platform_does_not_publish_is_refused(world: LtiWorld) -> None:
    assert_refused(relaunch(world, lambda c: None, key=SigningKey.new()), 403, "signature")


def test_a_wrong_audience_is_refused(world: LtiWorld) -> None:
    assert_refused(relaunch(world, lambda c: c.update(aud="another-tool")), 403, "audience")


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": ["grader-tool", "another-tool"], "azp": "another-tool"},
        {"aud": ["grader-tool", "another-tool"]},  # several audiences and no azp
        {"aud": "grader-tool", "azp": "another-tool"},
    ],
)
def test_a_wrong_authorized_party_is_refused(world: LtiWorld, claims: dict[str, Any]) -> None:
    assert_refused(relaunch(world, lambda c: c.update(claims)), 403, "azp")


def test_a_matching_authorized_party_among_several_audiences_is_accepted(world: LtiWorld) -> None:
    response = relaunch(world, lambda c: c.update(aud=["another-tool", "grader-tool"], azp="grader-tool"))
    assert response.status_code == 303, response.text


def test_an_expired_launch_is_refused(world: LtiWorld) -> None:
    now = int(time.time())
    assert_refused(relaunch(world, lambda c: c.update(exp=now - 600, iat=now - 900)), 403, "expired")


def test_an_unknown_deployment_is_refused(world: LtiWorld) -> None:
    response = relaunch(world, lambda c: c.update({CLAIM + "deployment_id": "not-registered"}))
    assert_refused(response, 403, "deployment")


def test_a_mismatched_state_is_refused(world: LtiWorld) -> None:
    assert_refused(relaunch(world, lambda c: None, state="state-of-another-login"), 400, "state")


def test_a_launch_without_the_login_cookies_is_refused(world: LtiWorld) -> None:
    with world.client() as client:
        params = start_login(client, world, world.platform.resource_launch(STUDENT))
    answer = world.platform.authorize(params)
    with world.client() as other_browser:
        response = other_browser.post(
            "/lti/launch", data={"id_token": answer.id_token, "state": answer.state}
        )
    assert_refused(response, 400, "no_cookie")


def test_an_unregistered_issuer_is_refused_at_login(world: LtiWorld) -> None:
    hint = world.platform.resource_launch(STUDENT)
    with world.client() as client:
        params = world.platform.login_params(hint, iss="https://unknown-lms.example")
        assert_refused(client.get("/lti/login", params=params), 403, "unregistered")


def test_an_unregistered_issuer_is_refused_at_launch(world: LtiWorld) -> None:
    assert_refused(
        relaunch(world, lambda c: c.update(iss="https://unknown-lms.example")), 403, "unregistered"
    )


def test_a_login_without_its_parameters_is_refused(world: LtiWorld) -> None:
    with world.client() as client:
        assert_refused(client.get("/lti/login"), 400, "missing_params")
        assert_refused(client.post("/lti/launch", data={}), 400, "no_cookie")


def test_a_garbled_id_token_is_refused(world: LtiWorld) -> None:
    with world.client() as client:
        params = start_login(client, world, world.platform.resource_launch(STUDENT))
        response = client.post("/lti/launch", data={"id_token": "not.a.jwt", "state": params["state"]})
    assert_refused(response, 400, "malformed")


def test_a_link_without_a_concept_is_refused(world: LtiWorld) -> None:
    with world.client() as client:
        response = launch(client, world, world.platform.resource_launch(STUDENT, concept=None))
    assert_refused(response, 404, "no_concept")
    with world.client() as client:
        response = launch(client, world, world.platform.resource_launch(STUDENT, concept="no-such-concept"))
    assert_refused(response, 404, "no_concept")


def test_the_lineitem_of_the_ags_claim_is_kept(world: LtiWorld) -> None:
    lineitem = f"{world.platform.lineitems_url()}/42"
    with world.client() as client:
        hint = world.platform.resource_launch(STUDENT, link_id="link-ags", lineitem=lineitem)
        assert launch(client, world, hint).status_code == 303
    with world.factory() as session:
        link = session.scalar(select(LtiResourceLink).where(LtiResourceLink.resource_link_id == "link-ags"))
        assert link is not None and link.lineitem_url == lineitem
    assert AGS.endswith("/endpoint")


# inside the LMS's frame


def test_a_login_inside_a_frame_checks_cookies_and_offers_a_new_window(world: LtiWorld) -> None:
    hint = world.platform.resource_launch(STUDENT)
    with world.client() as client:
        response = client.get(
            "/lti/login", params=world.platform.login_params(hint), headers={"Sec-Fetch-Dest": "iframe"}
        )
    assert response.status_code == 200
    assert "frame-ancestors https:" in response.headers["content-security-policy"]
    assert "x-frame-options" not in response.headers  # it would contradict the CSP in older browsers
    with world.client() as client:
        site = client.get("/login")
    assert site.headers["x-frame-options"] == "DENY"  # the site's own pages stay unframeable
    assert "frame-ancestors 'none'" in site.headers["content-security-policy"]
    target = html.unescape(re.search(r'data-target="([^"]+)"', response.text).group(1))  # type: ignore[union-attr]
    query = dict(parse_qsl(urlsplit(target).query))
    assert query["lti1p3_new_window"] == "1"
    assert query["lti_message_hint"] == hint and query["iss"] == world.platform.issuer
    assert 'target="_blank"' in response.text and "/lti/assets/lti.js" in response.text
    with world.client() as client:
        script = client.get("/lti/assets/lti.js")
    assert script.status_code == 200 and "document.cookie" in script.text


def test_a_launch_inside_a_frame_opens_a_new_window_with_a_one_use_link(world: LtiWorld) -> None:
    with world.client() as frame:
        hint = world.platform.resource_launch(STUDENT)
        response = launch(frame, world, hint, **{"Sec-Fetch-Dest": "iframe"})
        assert response.status_code == 200, response.text
        assert "frame-ancestors https:" in response.headers["content-security-policy"]
        link = html.unescape(re.search(r'href="(/lti/enter\?token=[^"]+)"', response.text).group(1))  # type: ignore[union-attr]
    with world.client() as window:
        entered = window.get(link)
        assert entered.status_code == 303 and entered.headers["location"] == "/concepts/causal-masking"
        assert "Grace Hopper" in window.get("/concepts/causal-masking").text
    with world.client() as another:
        assert_refused(another.get(link), 410, "link_expired")


def test_a_platform_that_rotated_its_key_is_followed(world: LtiWorld) -> None:
    with world.client() as client:
        assert launch(client, world, world.platform.resource_launch(STUDENT)).status_code == 303  # cached
    old = world.platform.key
    world.platform.key = SigningKey.new()
    try:
        with world.client() as client:
            response = launch(client, world, world.platform.resource_launch(STUDENT))
        assert response.status_code == 303, response.text  # the key set was fetched again
    finally:
        world.platform.key = old


def test_a_disabled_platform_is_refused(world: LtiWorld) -> None:
    platform = registry.find(world.factory, world.platform.issuer, world.platform.client_id)
    assert platform is not None
    registry.set_enabled(world.factory, platform.id, False)
    try:
        hint = world.platform.resource_launch(STUDENT)
        with world.client() as client:
            assert_refused(
                client.get("/lti/login", params=world.platform.login_params(hint)), 403, "disabled"
            )
    finally:
        registry.set_enabled(world.factory, platform.id, True)


MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership"
INSTITUTION = "http://purl.imsglobal.org/vocab/lis/v2/institution/person"


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        ([f"{MEMBERSHIP}#Instructor"], True),
        ([f"{MEMBERSHIP}/Instructor#TeachingAssistant"], True),
        ([f"{MEMBERSHIP}#ContentDeveloper"], True),
        ([f"{MEMBERSHIP}#Administrator"], True),
        ([f"{MEMBERSHIP}#Learner"], False),
        ([f"{INSTITUTION}#Instructor", f"{MEMBERSHIP}#Learner"], False),  # the course role decides
        ([], False),
    ],
)
def test_who_may_choose_concepts(roles: list[str], expected: bool) -> None:
    assert teaches({CLAIM + "roles": roles}) is expected


def test_the_login_may_be_posted(world: LtiWorld) -> None:
    hint = world.platform.resource_launch(STUDENT)
    with world.client() as client:
        response = client.post("/lti/login", data=world.platform.login_params(hint))
        assert response.status_code == 302 and response.headers["location"].startswith(
            world.platform.auth_url
        )
        params = dict(parse_qsl(urlsplit(response.headers["location"]).query))
        answer = world.platform.authorize(params)
        launched = client.post("/lti/launch", data={"id_token": answer.id_token, "state": answer.state})
        assert launched.status_code == 303
