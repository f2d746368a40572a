"""The platform's services as the tool calls them: the token by a signed client assertion
(cached), AGS scores, NRPS memberships with paging, and the errors a platform can answer."""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import jwt
import pytest
from sqlalchemy.orm import Session

from grader.lti.keys import KeyStore
from grader.lti.services import (
    MEMBERSHIPS_SCOPE,
    SCORE_SCOPE,
    Score,
    ServiceError,
    Services,
    retry_after,
    scores_url,
)
from grader.store import LtiPlatform
from tests.lti.fake_services import MEMBERSHIPS_TYPE, SCORE_TYPE
from tests.lti.services_fixtures import (  # the fixtures, by name
    CLIENT_ID,
    CONTEXT_ID,
    STUDENT_SUB,
    ServicesWorld,
    catalog,
    certs,
    services_world,
)
from tests.lti.tls import Certs

__all__ = ["catalog", "certs", "services_world"]


def platform_of(world: ServicesWorld) -> LtiPlatform:
    with world.factory() as session:
        platform = session.get(LtiPlatform, world.platform_id)
        assert platform is not None
        Session.object_session(platform).expunge(platform)  # type: ignore[union-attr]
        return platform


def test_the_token_comes_from_a_signed_client_assertion_and_is_cached(services_world: ServicesWorld) -> None:
    world = services_world
    platform = platform_of(world)
    token = world.services.token(platform, [SCORE_SCOPE])
    assert world.fake.tokens[token] == [SCORE_SCOPE]
    [claims] = world.fake.assertions  # verified by the fake against the tool's key set
    assert claims["iss"] == claims["sub"] == CLIENT_ID
    assert claims["aud"] == f"{world.base}/token"
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert world.services.token(platform, [SCORE_SCOPE]) == token  # from Redis
    assert len(world.fake.assertions) == 1
    assert world.services.token(platform, [MEMBERSHIPS_SCOPE]) != token  # another scope, another token
    assert len(world.fake.assertions) == 2
    ttl = world.redis.ttl(world.services._cache_key(platform, [SCORE_SCOPE]))
    assert 0 < ttl <= 3600 - 60  # dropped before the platform's expiry


def test_an_assertion_signed_by_another_key_is_refused(services_world: ServicesWorld, tmp_path: Path) -> None:
    world = services_world
    stranger = Services(KeyStore(tmp_path / "elsewhere"), None, verify=str(world.certs.ca))
    with pytest.raises(ServiceError) as refused:
        stranger.token(platform_of(world), [SCORE_SCOPE])
    assert refused.value.status == 401 and not refused.value.retryable
    assert "invalid_client" in refused.value.message
    assert world.fake.token_errors and not world.fake.tokens


def test_an_assertion_for_another_audience_is_refused(services_world: ServicesWorld) -> None:
    world = services_world
    platform = platform_of(world)
    platform.auth_audience = "https://somewhere.else/token"
    with pytest.raises(ServiceError, match="401"):
        world.services.token(platform, [SCORE_SCOPE])
    assert any("audience" in e.lower() for e in world.fake.token_errors)
    world.fake.audience = "https://somewhere.else/token"  # a platform that names its audience
    assert world.services.token(platform, [SCORE_SCOPE], fresh=True)


def test_an_expired_assertion_is_refused_by_the_fake(services_world: ServicesWorld) -> None:
    """The fake checks `exp`: a stale assertion (minted by hand) gets no token."""
    import httpx

    world = services_world
    key = world.keys.current()
    stale = jwt.encode(
        {"iss": CLIENT_ID, "sub": CLIENT_ID, "aud": f"{world.base}/token", "iat": 1, "exp": 2, "jti": "x"},
        key.private_pem,
        algorithm="RS256",
        headers={"kid": key.kid},
    )
    response = httpx.post(
        f"{world.base}/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": stale,
            "scope": SCORE_SCOPE,
        },
        verify=ssl.create_default_context(cafile=world.certs.ca),
    )
    assert response.status_code == 401
    assert "expired" in response.json()["error_description"].lower()


def test_a_score_is_posted_with_the_ags_media_type(services_world: ServicesWorld) -> None:
    world = services_world
    when = datetime.datetime(2026, 12, 8, 3, 4, 5, 123456)
    score = Score(STUDENT_SUB, 1.0, 1.0, when, comment="Passed")
    answer = world.services.post_score(platform_of(world), world.lineitem, score)
    assert answer["status"] == 200
    [received] = world.fake.received
    assert received.content_type == SCORE_TYPE
    assert received.lineitem == world.lineitem
    assert received.body == {
        "userId": STUDENT_SUB,
        "scoreGiven": 1.0,
        "scoreMaximum": 1.0,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": "2026-12-08T03:04:05.123+00:00",
        "comment": "Passed",
    }


def test_refusals_say_whether_to_try_again(services_world: ServicesWorld) -> None:
    world = services_world
    platform = platform_of(world)
    score = Score(STUDENT_SUB, 0.0, 1.0, datetime.datetime(2026, 1, 1))
    world.fake.fail("scores", 503)
    with pytest.raises(ServiceError) as unavailable:
        world.services.post_score(platform, world.lineitem, score)
    assert unavailable.value.retryable and unavailable.value.status == 503
    world.fake.fail("scores", 429, retry_after="7")
    with pytest.raises(ServiceError) as throttled:
        world.services.post_score(platform, world.lineitem, score)
    assert throttled.value.retryable and throttled.value.retry_after_s == 7
    world.fake.fail("scores", 400, body="userId is not in this course")
    with pytest.raises(ServiceError) as refused:
        world.services.post_score(platform, world.lineitem, score)
    assert not refused.value.retryable and refused.value.status == 400
    assert "userId is not in this course" in refused.value.message
    with pytest.raises(ServiceError) as unknown:  # no such line item: the platform's 404
        world.services.post_score(platform, world.lineitem + "-gone", score)
    assert unknown.value.status == 404 and not unknown.value.retryable


def test_an_unreachable_platform_is_worth_another_try(services_world: ServicesWorld) -> None:
    world = services_world
    platform = platform_of(world)
    platform.auth_token_url = "https://127.0.0.1:9/token"  # nothing listens on the discard port
    with pytest.raises(ServiceError) as lost:
        world.services.token(platform, [SCORE_SCOPE])
    assert lost.value.retryable and lost.value.status is None
    assert "cannot be reached" in lost.value.message


def test_a_revoked_token_is_replaced_once(services_world: ServicesWorld) -> None:
    world = services_world
    platform = platform_of(world)
    world.services.token(platform, [SCORE_SCOPE])
    world.fake.tokens.clear()  # the platform forgot every token it gave
    score = Score(STUDENT_SUB, 1.0, 1.0, datetime.datetime(2026, 1, 1))
    assert world.services.post_score(platform, world.lineitem, score)["status"] == 200
    assert len(world.fake.assertions) == 2 and len(world.fake.received) == 1


def test_memberships_follow_every_next_link(services_world: ServicesWorld) -> None:
    world = services_world
    for n in range(2, 8):  # 7 members, 2 a page: 4 pages
        world.fake.add_member(CONTEXT_ID, f"lms-student-{n}", f"Student {n}", f"s{n}@lms.example")
    world.fake.add_member(
        CONTEXT_ID,
        "lms-teacher",
        "Alan Turing",
        "alan@lms.example",
        ["http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"],
    )
    members = world.services.members(platform_of(world), f"{world.base}/courses/{CONTEXT_ID}/memberships")
    assert [m.user_id for m in members] == [
        STUDENT_SUB,
        *(f"lms-student-{n}" for n in range(2, 8)),
        "lms-teacher",
    ]
    assert len(world.fake.member_pages) == 4
    assert members[-1].role_names == ["Instructor"] and members[0].role_names == ["Learner"]
    assert members[0].name == "Grace Hopper" and members[0].email == "grace@lms.example"


def test_memberships_refused_or_unreachable_is_a_clear_error(services_world: ServicesWorld) -> None:
    world = services_world
    platform = platform_of(world)
    url = f"{world.base}/courses/{CONTEXT_ID}/memberships"
    world.fake.fail("memberships", 403, body="Names and Role Provisioning is off for this course")
    with pytest.raises(ServiceError, match="403.*Names and Role Provisioning is off"):
        world.services.members(platform, url)
    with pytest.raises(ServiceError, match="cannot be reached"):
        world.services.members(platform, "https://127.0.0.1:9/memberships")


def test_the_fake_serves_the_membership_media_type(services_world: ServicesWorld) -> None:
    import httpx

    world = services_world
    token = world.services.token(platform_of(world), [MEMBERSHIPS_SCOPE])
    response = httpx.get(
        f"{world.base}/courses/{CONTEXT_ID}/memberships",
        headers={"Authorization": f"Bearer {token}"},
        verify=ssl.create_default_context(cafile=world.certs.ca),
    )
    assert response.headers["content-type"].startswith(MEMBERSHIPS_TYPE)
    no_scope = world.services.token(platform_of(world), [SCORE_SCOPE])
    forbidden = httpx.get(
        f"{world.base}/courses/{CONTEXT_ID}/memberships",
        headers={"Authorization": f"Bearer {no_scope}"},
        verify=ssl.create_default_context(cafile=world.certs.ca),
    )
    assert forbidden.status_code == 403


def test_helpers() -> None:
    assert scores_url("https://lms/items/4") == "https://lms/items/4/scores"
    assert scores_url("https://lms/items/4/?type=x") == "https://lms/items/4/scores?type=x"
    assert retry_after("12") == 12
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10
    assert retry_after("soon") is None and retry_after(None) is None


def test_the_fake_for_a_platform_checks_the_tool_s_published_key_set(tmp_path: Path, certs: Certs) -> None:
    """`make_services` (what the launch tests' world starts) fetches the key set the tool
    serves at /lti/jwks; a key the tool does not publish is refused."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from tests.lti.fake_platform import FakePlatform, ThreadedServer
    from tests.lti.fake_services import make_services

    keys = KeyStore(tmp_path / "tool")

    async def jwks(request: Request) -> Response:
        return JSONResponse(keys.jwks())

    tool = ThreadedServer(Starlette(routes=[Route("/lti/jwks", jwks)]), certs.cert, certs.key)
    tool.start()
    platform = FakePlatform(base="https://lms.example", ca=certs.ca, tool_url=tool.url)
    fake = make_services(platform)
    side = ThreadedServer(fake, certs.cert, certs.key)
    side.start()
    try:
        platform.services_base = side.url
        row = LtiPlatform(
            name="Fake LMS",
            issuer=platform.issuer,
            client_id=platform.client_id,
            auth_token_url=platform.token_url,
            auth_login_url=platform.auth_url,
            key_set_url=platform.jwks_url,
        )
        assert Services(keys, None, verify=str(certs.ca)).token(row, [SCORE_SCOPE])
        assert fake.assertions[0]["iss"] == platform.client_id
        with pytest.raises(ServiceError, match="401"):
            Services(KeyStore(tmp_path / "other"), None, verify=str(certs.ca)).token(row, [SCORE_SCOPE])
    finally:
        side.stop()
        tool.stop()
