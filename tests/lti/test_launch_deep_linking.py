"""Deep linking against the fake platform: an instructor picks a concept, and the platform
receives a signed response (verified against the tool's published keys) that places it."""

from __future__ import annotations

import html
import re

import httpx

from tests.lti.conftest import LtiWorld
from tests.lti.fake_platform import CLAIM, DL, STUDENT, TEACHER
from tests.lti.test_launch import assert_refused, launch

TOKEN = re.compile(r'name="token" value="([^"]+)"')
JWT = re.compile(r'name="JWT" value="([^"]+)"')
ACTION = re.compile(r'<form method="post" action="([^"]+)" id="lti-autosubmit">')


def picker(client: httpx.Client, world: LtiWorld) -> str:
    """An instructor's deep-linking launch; the picker's token."""
    response = launch(client, world, world.platform.deep_linking_request(TEACHER))
    assert response.status_code == 200, response.text
    assert "frame-ancestors https:" in response.headers["content-security-policy"]
    assert 'value="causal-masking"' in response.text  # the concepts to choose from
    found = TOKEN.search(response.text)
    assert found is not None
    return found.group(1)


def test_an_instructor_places_a_concept_and_the_platform_receives_a_signed_link(world: LtiWorld) -> None:
    with world.client() as client:
        token = picker(client, world)
        answer = client.post("/lti/deep_link/select", data={"token": token, "concept": "causal-masking"})
        assert answer.status_code == 200, answer.text
        assert "/lti/assets/lti.js" in answer.text  # the script that posts the form back
        action, signed = ACTION.search(answer.text), JWT.search(answer.text)
        assert action is not None and signed is not None
        assert html.unescape(action.group(1)) == world.platform.deep_link_return_url
    # the browser's auto-submit: the platform verifies the response with the tool's JWKS
    before = len(world.platform.deep_link_responses)
    placed = httpx.post(action.group(1), data={"JWT": html.unescape(signed.group(1))}, verify=world.tls)
    assert placed.status_code == 200, (placed.text, world.platform.deep_link_errors)
    assert len(world.platform.deep_link_responses) == before + 1
    claims = world.platform.deep_link_responses[-1]
    assert claims[CLAIM + "deployment_id"] == world.platform.deployment_id
    assert claims[DL + "data"] == "opaque-platform-data"
    [item] = claims[DL + "content_items"]
    assert item["type"] == "ltiResourceLink"
    assert item["url"] == f"{world.tool_url}/lti/launch"
    assert item["custom"] == {"concept": "causal-masking"}
    title = item["title"]
    assert title and item["lineItem"] == {"scoreMaximum": 1, "label": title, "resourceId": "causal-masking"}

    # the link the platform made launches the concept for a student
    with world.client() as client:
        hint = world.platform.resource_launch(STUDENT, concept=item["custom"]["concept"], title=title)
        response = launch(client, world, hint)
        assert response.status_code == 303 and response.headers["location"] == "/concepts/causal-masking"


def test_a_choice_is_sent_once(world: LtiWorld) -> None:
    with world.client() as client:
        token = picker(client, world)
        first = client.post("/lti/deep_link/select", data={"token": token, "concept": "causal-masking"})
        assert first.status_code == 200
        again = client.post("/lti/deep_link/select", data={"token": token, "concept": "causal-masking"})
        assert_refused(again, 410, "link_expired")


def test_an_unknown_concept_shows_the_picker_again(world: LtiWorld) -> None:
    with world.client() as client:
        token = picker(client, world)
        response = client.post("/lti/deep_link/select", data={"token": token, "concept": "no-such-concept"})
        assert response.status_code == 422
        assert "There is no concept" in response.text and f'value="{token}"' in response.text
        chosen = client.post("/lti/deep_link/select", data={"token": token, "concept": "causal-masking"})
        assert chosen.status_code == 200


def test_a_forged_picker_token_is_refused(world: LtiWorld) -> None:
    with world.client() as client:
        response = client.post(
            "/lti/deep_link/select", data={"token": "made-up", "concept": "causal-masking"}
        )
    assert_refused(response, 410, "link_expired")


def test_a_student_cannot_deep_link(world: LtiWorld) -> None:
    with world.client() as client:
        response = launch(client, world, world.platform.deep_linking_request(STUDENT))
    assert_refused(response, 403, "not_instructor")
