"""An LTI launch in a real browser: the learner starts in the (fake) LMS's course, goes through
the tool's login, the platform's authorization and the launch, lands on the concept page
signed in, submits a passing solution, and the platform receives the score; inside the LMS's
frame, the tool continues in a new window; an instructor places a concept by deep linking.

The platform runs on https://localhost and the tool on https://127.0.0.1: two sites, so the
launch's cookies must be `SameSite=None; Secure` as in production. Chromium trusts the test
certificate by its public key (`--ignore-certificate-errors-spki-list`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS, ROOT, VERDICT_TIMEOUT_S, shot
from tests.lti.conftest import LtiWorld, lti_world
from tests.lti.fake_platform import STUDENT, TEACHER, Person

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLUG = "causal-masking"
CORRECT = ROOT / "examples" / "submissions" / "attention.py"  # passes causal-masking
SCORE_TIMEOUT_S = 60.0  # from the verdict to the platform: a job on the lti queue


@pytest.fixture(scope="module")
def lti(artifacts: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LtiWorld]:
    with lti_world(tmp_path_factory.mktemp("lti-e2e"), worker=True, services=True) as running:
        yield running


@pytest.fixture(scope="module")
def lti_browser(browser: Browser, lti: LtiWorld) -> Iterator[Browser]:
    """Chromium that trusts the test certificate (a second browser of the same Playwright)."""
    launched = browser.browser_type.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=[*CHROMIUM_ARGS, f"--ignore-certificate-errors-spki-list={lti.certs.spki}"],
    )
    yield launched
    launched.close()


@pytest.fixture
def context(lti_browser: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    opened = lti_browser.new_context(viewport={"width": 1280, "height": 900})
    opened.set_default_timeout(30_000)
    errors: list[str] = []
    opened.on("weberror", lambda error: errors.append(str(error.error)))
    yield opened
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name)
    for index, page in enumerate(opened.pages):
        if not page.is_closed():
            shot(page, f"{name}-end-{index}")
    opened.close()
    assert not errors, f"JavaScript errors on the pages: {errors}"


def visited(page: Page) -> list[str]:
    """The URLs of the documents the page navigates to, in order (recorded from now on)."""
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url) if r.is_navigation_request() else None)
    return seen


def test_a_student_launch_lands_on_the_concept_page(lti: LtiWorld, context: BrowserContext) -> None:
    learner = Person("e2e-learner", "Katherine Johnson", "katherine@lms.example", STUDENT.roles)
    assert lti.services is not None, "the fake platform's services side did not start"
    lineitem = lti.services.add_lineitem(
        lti.platform.services, lti.platform.context_id, "Causal masking", SLUG
    )
    hint = lti.platform.resource_launch(learner, concept=SLUG, lineitem=lineitem)
    page = context.new_page()
    page.goto(f"{lti.platform.base}/course?hint={hint}")
    shot(page, "lti-course")
    urls = visited(page)
    page.click("#launch")
    page.wait_for_url(f"{lti.tool_url}/concepts/{SLUG}")
    expect(page.locator("header.top")).to_contain_text("Katherine Johnson")
    expect(page.locator("#submit")).to_be_visible()
    shot(page, "lti-concept")
    paths = [re.sub(r"^https://[^/]+", "", u).split("?")[0] for u in urls]
    assert paths[:4] == ["/lti/login", "/auth", "/lti/launch", f"/concepts/{SLUG}"], urls
    assert urls[0].startswith(lti.tool_url) and urls[1].startswith(lti.platform.base)
    cookies = {c["name"]: c for c in context.cookies(f"{lti.tool_url}/lti/launch")}
    assert cookies["lti1p3-session-id"]["sameSite"] == "None" and cookies["lti1p3-session-id"]["secure"]
    assert cookies["lti1p3-session-id"]["path"] == "/lti/"
    assert "grader_session" in cookies

    # the learner submits a passing solution from the page the launch opened
    page.wait_for_function("() => window.graderEditor !== undefined")
    page.evaluate("v => window.graderEditor.setValue(v)", CORRECT.read_text())
    page.click("#submit")
    page.wait_for_url(re.compile(r"/submissions/\d+$"))
    verdict = page.locator("#verdict-status")
    deadline = time.monotonic() + VERDICT_TIMEOUT_S
    while not verdict.is_visible():
        lti.check_running()
        assert time.monotonic() < deadline, f"no verdict within {VERDICT_TIMEOUT_S:g} s"
        page.wait_for_timeout(1000)
    assert page.locator("#verdict").get_attribute("data-status") == "passed"
    shot(page, "lti-passed")

    # and the platform receives the score for the line item the launch named
    deadline = time.monotonic() + SCORE_TIMEOUT_S
    while not (received := lti.services.scores_for(learner.sub)):
        lti.check_running()
        assert time.monotonic() < deadline, f"no score reached the platform within {SCORE_TIMEOUT_S:g} s"
        time.sleep(0.5)
    [score] = received
    assert (score["scoreGiven"], score["scoreMaximum"]) == (1.0, 1.0)
    assert (score["activityProgress"], score["gradingProgress"]) == ("Completed", "FullyGraded")
    assert lti.services.scores[(lineitem, learner.sub)] == score


def test_inside_the_lms_frame_the_tool_opens_in_a_new_window(lti: LtiWorld, context: BrowserContext) -> None:
    learner = Person("e2e-framed", "Dorothy Vaughan", "dorothy@lms.example", STUDENT.roles)
    hint = lti.platform.resource_launch(learner, concept=SLUG)
    page = context.new_page()
    page.goto(f"{lti.platform.base}/course_frame?hint={hint}")
    frame = page.frame_locator("#tool")
    # cookies allowed in the frame: the launch completes there and offers a one-use link;
    # blocked: the login itself offers to continue in a new window
    link = frame.locator("#lti-open, #lti-new-window-link:visible")
    expect(link).to_be_visible()
    shot(page, "lti-frame")
    with context.expect_page() as opened:
        link.click()
    window = opened.value
    window.wait_for_url(f"{lti.tool_url}/concepts/{SLUG}")
    expect(window.locator("header.top")).to_contain_text("Dorothy Vaughan")
    shot(window, "lti-new-window")


def test_an_instructor_places_a_concept_from_inside_the_lms(lti: LtiWorld, context: BrowserContext) -> None:
    teacher = Person("e2e-teacher", "Mary Jackson", "mary@lms.example", TEACHER.roles)
    hint = lti.platform.deep_linking_request(teacher)
    before = len(lti.platform.deep_link_responses)
    page = context.new_page()
    page.goto(f"{lti.platform.base}/course_frame?hint={hint}")
    frame = page.frame_locator("#tool")
    frame.locator(f'input[name="concept"][value="{SLUG}"]').check()
    shot(page, "lti-picker")
    frame.locator("#lti-place").click()
    expect(frame.locator("#placed")).to_contain_text("Placed:")  # the platform verified the response
    shot(page, "lti-placed")
    assert len(lti.platform.deep_link_responses) == before + 1
    [item] = lti.platform.deep_link_responses[-1][
        "https://purl.imsglobal.org/spec/lti-dl/claim/content_items"
    ]
    assert item["custom"] == {"concept": SLUG} and item["lineItem"]["resourceId"] == SLUG
