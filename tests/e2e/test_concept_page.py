"""The concept page in a real browser: Back after a run or a submission shows the code that was sent
and the history as it is now; code over the size limit is refused where it was typed (by the
browser before sending, and by the server when sent anyway, at any size) and kept; reloading the
page a refusal went back to sends nothing; the lesson and the editor share a wide window."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect
from sqlalchemy import func, select

from grader.store import Submission
from tests.e2e.conftest import ARTIFACTS, ROOT, Server
from web import accounts
from web.routes.concepts import PASTE_MAX_BYTES
from web.services.submissions import human_size

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLUG = "causal-masking"
EXERCISE = ROOT / "exercises" / SLUG
SPEC = tomllib.loads((EXERCISE / "exercise.toml").read_text())
MODULE = f"{SPEC['entrypoint']}.py"
LIMIT = SPEC["source_kb"] * 1024
SKELETON = (EXERCISE / "skeleton.py").read_text()
MB = 1024 * 1024


def too_large(size: str) -> str:
    """The refusal of pasted code of `size`, as the server words it."""
    return f"{MODULE} is {size}; {SPEC['title']} takes files of at most {human_size(LIMIT)}."


def code_of_size(size: int) -> str:
    """Python source of exactly `size` bytes, in lines of 64."""
    line = "x = 1  # " + "-" * 54 + "\n"
    text = line * (size // len(line))
    return text + "#" * (size - len(text))


def learner(server: Server, pages: Callable[[str], Page], name: str) -> tuple[Page, int]:
    """A new student, logged in through the form; the page and the student's id."""
    email = name.lower().replace(" ", ".") + "@e2e.example"
    password = f"{name.lower().replace(' ', '-')}-password"
    user = accounts.create_user(server.factory, email, password, name)
    page = pages(name)
    page.goto("/login")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/concepts$"))
    return page, user.id


def submissions_of(server: Server, user_id: int) -> int:
    with server.factory() as session:
        query = select(func.count()).select_from(Submission).where(Submission.user_id == user_id)
        return session.scalar(query) or 0


def editor_value(page: Page) -> str:
    page.wait_for_function("() => window.graderEditor !== undefined")
    value: str = page.evaluate("() => window.graderEditor.getValue()")
    return value


def set_editor(page: Page, code: str) -> None:
    page.wait_for_function("() => window.graderEditor !== undefined")
    page.evaluate("v => window.graderEditor.setValue(v)", code)


def send_unchecked(page: Page, source: str | None = None) -> None:
    """Send the form as the browser would without the page's script (no size check), optionally
    with `source` in place of the editor's code, and wait for the page it leads to."""
    with page.expect_navigation():
        page.evaluate(
            """source => {
              const area = document.getElementById("editor");
              area.value = source === null ? window.graderEditor.getValue() : source;
              HTMLFormElement.prototype.submit.call(document.getElementById("submit-form"));
            }""",
            source,
        )


def test_back_after_a_run_or_a_submission_shows_the_code_sent_and_the_history(
    pages: Callable[[str], Page], server: Server
) -> None:
    page, _ = learner(server, pages, "Bea Back")
    page.goto(f"/concepts/{SLUG}")
    assert editor_value(page) == SKELETON
    sent: list[tuple[str, str]] = []
    for button, note in (("#run-public", "# a first try"), ("#submit", "# a second try")):
        code = f"{SKELETON}\n{note}\n"
        set_editor(page, code)
        page.click(button)
        page.wait_for_url(re.compile(r"/submissions/\d+$"))
        submission_id = page.url.rsplit("/", 1)[1]
        sent.append((submission_id, code))
        page.go_back()
        expect(page).to_have_url(re.compile(f"/concepts/{SLUG}$"))
        assert editor_value(page) == code, f"Back after {button} lost the code"
        expect(page.locator("#editor")).to_have_attribute("data-latest", submission_id)
        for earlier, _code in sent:
            expect(page.locator(f'#history a[href="/submissions/{earlier}"]')).to_have_count(1)
    # a later visit starts from the latest submission too
    page.goto("/concepts")
    page.goto(f"/concepts/{SLUG}")
    assert editor_value(page) == sent[-1][1]


def test_code_over_the_limit_is_refused_where_it_was_typed_and_kept(
    pages: Callable[[str], Page], server: Server
) -> None:
    page, user_id = learner(server, pages, "Pat Paste")
    page.goto(f"/concepts/{SLUG}")
    big = code_of_size(2 * MB)
    error = page.locator("#submit-error")

    # the browser refuses it before sending: the page stays, with the server's words
    set_editor(page, big)
    page.click("#run-public")
    expect(error).to_have_text(too_large("2 MB"))
    expect(page).to_have_url(re.compile(f"/concepts/{SLUG}$"))
    assert editor_value(page) == big
    assert submissions_of(server, user_id) == 0
    page.screenshot(path=str(ARTIFACTS / "concept-page-too-large.png"))

    # kept as the draft: a reload brings it back, the refusal gone
    page.reload()
    assert editor_value(page) == big
    expect(error).to_have_count(0)

    # sent anyway (as without the page's script): the server refuses it, back on the concept page
    send_unchecked(page)
    expect(page).to_have_url(re.compile(f"/concepts/{SLUG}$"))
    expect(error).to_have_text(too_large("2 MB"))
    assert editor_value(page) == big

    # larger than the server ever reads: the same answer, by the request's size, and the editor's
    # code still there
    huge = code_of_size(PASTE_MAX_BYTES + MB)
    send_unchecked(page, huge)
    expect(page).to_have_url(re.compile(f"/concepts/{SLUG}$"))
    expect(error).to_have_text(re.compile(rf"^{re.escape(MODULE)} is \d+(\.\d)? MB; "))
    said = float(re.findall(r"is ([\d.]+) MB", error.inner_text())[0])
    assert said >= (PASTE_MAX_BYTES + MB) / MB
    assert editor_value(page) == big
    assert submissions_of(server, user_id) == 0


def test_reloading_the_page_a_refusal_went_back_to_sends_nothing(
    pages: Callable[[str], Page], server: Server
) -> None:
    page, user_id = learner(server, pages, "Rhea Reload")
    page.goto(f"/concepts/{SLUG}")
    blank = "    \n\n"  # refused: the submission is empty
    set_editor(page, blank)
    page.click("#submit")
    expect(page).to_have_url(re.compile(f"/concepts/{SLUG}$"))  # not the form's target
    expect(page.locator("#submit-error")).to_have_text("the submission is empty")
    assert editor_value(page) == blank
    page.screenshot(path=str(ARTIFACTS / "concept-page-refused.png"))
    before = submissions_of(server, user_id)

    posts: list[str] = []

    def on_request(request: Request) -> None:
        if request.method != "GET":
            posts.append(f"{request.method} {request.url}")

    page.on("request", on_request)
    page.reload()
    expect(page).to_have_url(re.compile(f"/concepts/{SLUG}$"))
    expect(page.locator("#submit-error")).to_have_count(0)  # said once
    assert editor_value(page) == blank
    page.remove_listener("request", on_request)
    assert posts == [], posts
    assert submissions_of(server, user_id) == before == 0


LAYOUT_JS = """
() => {
  const box = (el) => {
    const r = el.getBoundingClientRect();
    return { x: r.x, y: r.y, w: r.width, h: r.height };
  };
  const cm = window.graderEditor;
  const info = cm.getScrollInfo();
  const top = (line, ch) => cm.charCoords({ line, ch }, "local").top;
  let wrapped = 0;  // lines drawn on more than one row
  for (let i = 0; i < cm.lineCount(); i++) {
    if (top(i, 0) !== top(i, cm.getLine(i).length)) wrapped++;
  }
  const pres = Array.from(document.querySelectorAll("#lesson pre"));
  return {
    lesson: box(document.getElementById("lesson")),
    editor: box(document.querySelector(".CodeMirror")),
    editorScrolls: info.width > info.clientWidth + 1,
    wrapped,
    lessonCodeScrolls: pres.filter((p) => p.scrollWidth > p.clientWidth + 1).length,
    lessonCode: pres.length,
    pageScrolls: document.documentElement.scrollWidth > window.innerWidth,
  };
}
"""


def layout(page: Page, width: int, height: int) -> dict[str, Any]:
    page.set_viewport_size({"width": width, "height": height})
    page.wait_for_function(f"() => window.innerWidth === {width}")
    page.evaluate("() => window.graderEditor.refresh()")
    measured: dict[str, Any] = page.evaluate(LAYOUT_JS)
    return measured


def beside(found: dict[str, Any]) -> bool:
    lesson, editor = found["lesson"], found["editor"]
    return editor["x"] >= lesson["x"] + lesson["w"] and editor["y"] < lesson["y"] + lesson["h"]


def test_the_lesson_and_the_editor_share_a_wide_window(pages: Callable[[str], Page], server: Server) -> None:
    page, _ = learner(server, pages, "Wes Wide")
    page.goto(f"/concepts/{SLUG}")
    assert editor_value(page) == SKELETON
    longest = max(len(line) for line in SKELETON.splitlines())
    assert longest > 80  # lines that a 600 px editor cuts off

    found = layout(page, 1280, 900)
    page.screenshot(path=str(ARTIFACTS / "concept-page-1280.png"))
    (ARTIFACTS / "concept-page-layout.txt").write_text(f"1280: {found}\n")
    assert beside(found), found
    assert found["editor"]["w"] >= 660, found  # more than half the window
    assert not found["editorScrolls"], found  # long lines wrap: nothing is cut off
    assert found["lessonCode"] > 0 and found["lessonCodeScrolls"] == 0, found
    assert not found["pageScrolls"], found

    found = layout(page, 1920, 1080)
    page.screenshot(path=str(ARTIFACTS / "concept-page-1920.png"))
    with (ARTIFACTS / "concept-page-layout.txt").open("a") as log:
        log.write(f"1920: {found}\n")
    assert beside(found), found
    assert found["editor"]["w"] >= 1000, found
    assert found["editor"]["h"] >= 700, found  # the editor takes the window's height too
    assert found["wrapped"] == 0, found  # every skeleton line whole on one line
    assert not found["editorScrolls"] and found["lessonCodeScrolls"] == 0, found
    assert not found["pageScrolls"], found

    found = layout(page, 1000, 900)  # narrow: stacked, each the full width
    page.screenshot(path=str(ARTIFACTS / "concept-page-1000.png"))
    with (ARTIFACTS / "concept-page-layout.txt").open("a") as log:
        log.write(f"1000: {found}\n")
    assert found["editor"]["y"] >= found["lesson"]["y"] + found["lesson"]["h"], found
    assert found["editor"]["w"] >= 900 and found["editor"]["h"] >= 450, found
    assert not found["pageScrolls"], found
