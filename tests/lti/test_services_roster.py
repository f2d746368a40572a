"""The cohort page's learning-platform section: a course's members fetched from the platform
(Names and Role Provisioning) with how far each got here, a clear message when the platform
refuses or cannot be reached, and the grades that did not reach it, which can be sent again."""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from grader.jobs import LTI_QUEUE
from grader.jobs import queue as jobqueue
from grader.lti import outbox
from grader.lti.keys import KeyStore
from grader.lti.services import Services
from grader.store import (
    LtiContext,
    LtiPlatform,
    LtiResourceLink,
    LtiScorePush,
    LtiUser,
    PushState,
    transaction,
)
from grader.verdict import Status
from tests.integration.web_fixtures import World, add_submission, client, log_in
from tests.lti.fake_platform import ThreadedServer
from tests.lti.fake_services import INSTRUCTOR, SCORE_SCOPE, FakeServices
from tests.lti.services_fixtures import certs
from tests.lti.tls import Certs

__all__ = ["certs"]
ISSUER = "https://canvas.example"
CONCEPT = "causal-masking"


@dataclass
class Course:
    world: World
    fake: FakeServices
    base: str
    context_pk: int
    platform_id: int


@pytest.fixture
def course(web: World, certs: Certs, monkeypatch: pytest.MonkeyPatch) -> Iterator[Course]:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca))  # the app trusts the fake platform's CA
    keys = KeyStore(web.settings.data_dir)
    fake = FakeServices(client_id="tool-7", jwks=keys.jwks)
    server = ThreadedServer(fake, certs.cert, certs.key)
    server.start()
    base = server.url
    lineitem = fake.add_lineitem(base, "c-42", "Causal masking", CONCEPT)
    fake.add_member("c-42", "lms-ada", "Ada Lovelace", "ada@canvas.example")
    fake.add_member("c-42", "lms-zoe", "Zoe Nobody", "zoe@canvas.example")
    fake.add_member("c-42", "lms-ian", "Ian Teacher", "ian@canvas.example", [INSTRUCTOR])
    try:
        with transaction(web.factory) as session:
            platform = LtiPlatform(
                name="Canvas",
                issuer=ISSUER,
                client_id="tool-7",
                deployment_ids=["d1"],
                auth_login_url=f"{ISSUER}/auth",
                auth_token_url=f"{base}/token",
                key_set_url=f"{ISSUER}/jwks",
            )
            session.add(platform)
            session.flush()
            context = LtiContext(
                platform_id=platform.id,
                context_id="c-42",
                deployment_id="d1",
                title="LLM engineering, spring",
                memberships_url=f"{base}/courses/c-42/memberships",
                ags_scopes=[SCORE_SCOPE],
            )
            silent = LtiContext(
                platform_id=platform.id, context_id="c-43", deployment_id="d1", title="No NRPS"
            )
            session.add_all([context, silent])
            session.flush()
            session.add_all(
                [
                    LtiResourceLink(
                        platform_id=platform.id,
                        context_pk=context.id,
                        resource_link_id="rl-1",
                        concept=CONCEPT,
                        title="Causal masking",
                        lineitem_url=lineitem,
                        ags_scopes=[SCORE_SCOPE],
                    ),
                    LtiUser(
                        issuer=ISSUER,
                        sub="lms-ada",
                        user_id=web.student.id,
                        platform_id=platform.id,
                        name="Ada Lovelace",
                        email="ada@canvas.example",
                        roles=[],
                        last_launch_at=datetime.datetime(2026, 12, 1),
                    ),
                ]
            )
            ids = (context.id, platform.id)
        yield Course(web, fake, base, *ids)
    finally:
        server.stop()


def test_the_roster_lists_the_members_and_their_progress(course: Course) -> None:
    world = course.world
    add_submission(world, world.student, CONCEPT, status=Status.FAILED)
    add_submission(world, world.student, CONCEPT, status=Status.PASSED)
    c = client(world.app)
    log_in(c, world.instructor)
    page = c.get("/instructor/cohort")
    assert page.status_code == 200
    assert "LLM engineering, spring" in page.text and "Show the course's members" in page.text
    assert "No NRPS" in page.text and "cannot be listed" in page.text
    assert course.fake.member_pages == []  # fetched on demand only
    page = c.get(f"/instructor/cohort?roster={course.context_pk}")
    assert page.status_code == 200, page.text
    assert len(course.fake.member_pages) == 2  # three members, two a page
    rows = re.findall(r'<tr class="member">(.*?)</tr>', page.text, re.S)
    assert len(rows) == 3
    ada, zoe, ian = rows
    assert "Ada Lovelace" in ada and "ada@canvas.example" in ada and "Learner" in ada
    concepts = len(list(world.web.catalog()))
    assert f"passed 1 of {concepts} concepts, tried 1" in ada
    assert "Zoe Nobody" in zoe and "not launched yet" in zoe
    assert "Instructor" in ian


def test_a_refusing_or_unreachable_platform_is_a_clear_message(course: Course) -> None:
    world = course.world
    c = client(world.app)
    log_in(c, world.instructor)
    course.fake.fail("memberships", 403, body="this course does not share its roster")
    page = c.get(f"/instructor/cohort?roster={course.context_pk}")
    assert page.status_code == 200
    assert "Canvas did not give the course&#39;s members" in page.text
    assert "403" in page.text and "does not share its roster" in page.text
    with transaction(world.factory) as session:
        platform = session.get(LtiPlatform, course.platform_id)
        assert platform is not None
        platform.auth_token_url = "https://127.0.0.1:9/token"
    page = c.get(f"/instructor/cohort?roster={course.context_pk}")
    assert page.status_code == 200 and "cannot be reached" in page.text
    assert c.get("/instructor/cohort?roster=0").status_code == 422  # not an id


def test_failed_grades_are_shown_and_sent_again(course: Course) -> None:
    world = course.world
    add_submission(world, world.student, CONCEPT, status=Status.PASSED)
    with world.factory() as session:
        [push_id] = session.scalars(select(LtiScorePush.id)).all()
    course.fake.fail("scores", 400, body="the line item is closed")
    services = Services(KeyStore(world.settings.data_dir), None)
    assert outbox.send(world.factory, services, push_id) == PushState.FAILED
    c = client(world.app)
    csrf = log_in(c, world.instructor)
    page = c.get("/instructor/cohort")
    row = re.search(rf'<tr class="push failed" data-push="{push_id}">(.*?)</tr>', page.text, re.S)
    assert row is not None, page.text
    assert "Ada Lovelace" in row.group(1) and "the line item is closed" in row.group(1)
    assert "send again" in row.group(1)
    sent = c.post("/instructor/cohort/lti-pushes/retry", data={"csrf": csrf, "push": str(push_id)})
    assert sent.status_code == 303 and sent.headers["location"] == "/instructor/cohort#lti"
    with world.factory() as session:
        again = session.get(LtiScorePush, push_id)
        assert again is not None and (again.state, again.tries) == (PushState.PENDING, 0)
        job_id = again.job_id
    assert job_id in jobqueue.queue(world.web.redis(), LTI_QUEUE).get_job_ids()
    assert outbox.send(world.factory, services, push_id) == PushState.SENT
    assert "data-push" not in c.get("/instructor/cohort").text
    assert (
        c.post("/instructor/cohort/lti-pushes/retry", data={"push": str(push_id)}).status_code == 403
    )  # csrf


def test_students_do_not_see_the_section(course: Course) -> None:
    c = client(course.world.app)
    log_in(c, course.world.student)
    assert c.get(f"/instructor/cohort?roster={course.context_pk}").status_code in (303, 403, 404)
    assert course.fake.member_pages == []


def test_no_section_without_platforms(web: World) -> None:
    c = client(web.app)
    log_in(c, web.instructor)
    page = c.get("/instructor/cohort")
    assert page.status_code == 200 and 'id="lti"' not in page.text
    with web.factory() as session:
        assert session.scalars(select(LtiContext)).all() == []
