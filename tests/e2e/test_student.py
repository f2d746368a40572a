"""A learner's first concept, in a real browser: sign up, find causal masking open and what needs
it locked, run the public tests on the skeleton (a failure that does not count), submit a
known-wrong solution and read its hint, submit a correct one while the page follows the grading
live, and find the next concept unlocked."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import ARTIFACTS, ROOT, VERDICT_TIMEOUT_S, Server, shot

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLUG = "causal-masking"
EXERCISE = ROOT / "exercises" / SLUG
SOLUTION = ROOT / "solutions" / SLUG
# Computes float16 inputs in float16: caught by one hidden test, which says what to do instead.
WRONG = SOLUTION / "wrong" / "half_compute.py"
WRONG_TEST = "test_float16_scores_beyond_its_range"
WRONG_HINT = "q @ k^T overflows float16 here"
CORRECT = ROOT / "examples" / "submissions" / "attention.py"
MATH_SLUG = "bpe-merges"  # a lesson with $...$ and $$...$$ math, open from the start

# Records every text the submission page's live status shows, in sessionStorage: it survives
# the reload that replaces the live area with the verdict.
LIVE_KEY = "e2e-live-text"
RECORD_LIVE_TEXT = """
(() => {
  const KEY = "__KEY__";
  const record = (text) => {
    text = (text || "").trim();
    if (!text) return;
    const seen = JSON.parse(sessionStorage.getItem(KEY) || "[]");
    if (seen[seen.length - 1] !== text) {
      seen.push(text);
      sessionStorage.setItem(KEY, JSON.stringify(seen));
    }
  };
  document.addEventListener("DOMContentLoaded", () => {
    const el = document.getElementById("live-text");
    if (!el) return;
    record(el.textContent);
    new MutationObserver(() => record(el.textContent))
      .observe(el, { childList: true, characterData: true, subtree: true });
  });
})();
""".replace("__KEY__", LIVE_KEY)


def specs() -> dict[str, dict[str, Any]]:
    return {
        path.parent.name: tomllib.loads(path.read_text())
        for path in sorted((ROOT / "exercises").glob("*/exercise.toml"))
    }


def card(page: Page, slug: str) -> Locator:
    return page.locator(f'article.card[data-slug="{slug}"]')


def editor(page: Page) -> None:
    """Wait for the page's script to have made the editor: a page whose URL is already the
    concept's may not have run it yet."""
    page.wait_for_function("() => window.graderEditor !== undefined")


def editor_value(page: Page) -> str:
    editor(page)
    value: str = page.evaluate("() => window.graderEditor.getValue()")
    return value


def set_editor(page: Page, code: str) -> None:
    editor(page)
    page.evaluate("v => window.graderEditor.setValue(v)", code)
    assert editor_value(page) == code


def submit(page: Page, button: str) -> int:
    """Click `button` on a concept page; the id of the submission page it leads to."""
    page.click(button)
    page.wait_for_url(re.compile(r"/submissions/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def wait_verdict(page: Page, server: Server) -> str:
    """Wait for the submission page to show its verdict (the page reloads itself when grading
    ends) and return the verdict's status."""
    verdict = page.locator("#verdict-status")
    server.wait(lambda: verdict.wait_for(timeout=5_000), VERDICT_TIMEOUT_S, "the verdict")
    status = page.locator("#verdict").get_attribute("data-status")
    assert status is not None
    return status


def test_preconditions() -> None:
    """The files the journey relies on say what the journey assumes."""
    header = WRONG.read_text().splitlines()[:4]
    assert "# expect: failed" in header
    assert any(line.startswith("# caught-by:") and WRONG_TEST in line for line in header)
    hidden = (SOLUTION / "test_hidden.py").read_text()
    assert f"def {WRONG_TEST}(" in hidden and WRONG_HINT in hidden
    assert "def scaled_dot_product_attention" in CORRECT.read_text()
    math = tomllib.loads((ROOT / "exercises" / MATH_SLUG / "exercise.toml").read_text())
    assert math["prerequisites"] == [] and math["tier"] == "free"
    lesson = (ROOT / "exercises" / MATH_SLUG / "README.md").read_text()
    assert re.search(r"\$[^$\n]+\$", lesson) and "\n$$\n" in lesson


def test_student_journey(pages: Callable[[str], Page], server: Server) -> None:
    catalog = specs()
    title = catalog[SLUG]["title"]
    needs_it = {slug for slug, spec in catalog.items() if SLUG in spec["prerequisites"]}
    # free concepts whose only prerequisite is causal masking open with it; the rest stay locked
    opens = sorted(
        slug
        for slug in needs_it
        if catalog[slug]["prerequisites"] == [SLUG] and catalog[slug]["tier"] == "free"
    )
    stays = sorted(needs_it - set(opens))
    assert opens, f"no free concept has {SLUG} as its only prerequisite"
    total = len(catalog)

    page = pages("student")
    page.context.add_init_script(RECORD_LIVE_TEXT)

    # -- sign up through the form
    page.goto("/concepts")
    expect(page).to_have_url(re.compile(r"/login\?next=/concepts$"))
    shot(page, "student-01-login")
    page.get_by_role("link", name="Create an account").click()
    expect(page).to_have_url(re.compile(r"/signup$"))
    shot(page, "student-02-signup")
    page.fill('input[name="name"]', "Lin Learner")
    page.fill('input[name="email"]', "lin.learner@e2e.example")
    page.fill('input[name="password"]', "lin-learner-password")
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(r"/concepts$"))
    expect(page.locator(".flash")).to_contain_text("Welcome, Lin Learner")
    expect(page.locator("header.top nav")).to_contain_text("Lin Learner")

    # -- the concept map: causal masking open, what needs it locked
    expect(card(page, SLUG)).to_have_attribute("data-status", "unlocked")
    for slug in needs_it:
        expect(card(page, slug)).to_have_attribute("data-status", "locked")
        expect(card(page, slug).locator(".reason")).to_contain_text(SLUG)
    expect(page.locator("main")).to_contain_text(f"0 of {total} passed")
    shot(page, "student-03-concept-map")

    # a locked concept's page says why, and its buttons are disabled
    page.goto(f"/concepts/{opens[0]}")
    expect(page.locator("#locked-reason")).to_contain_text(f"pass {SLUG} first")
    expect(page.locator("#submit")).to_be_disabled()
    expect(page.locator("#run-public")).to_be_disabled()

    # -- math in a lesson is typeset by KaTeX (causal masking's lesson has none: it writes its
    # formulas as code), inline and displayed, leaving no TeX source behind
    page.goto(f"/concepts/{MATH_SLUG}")
    expect(page.locator("#lesson .math.inline .katex").first).to_be_visible()
    expect(page.locator("#lesson .katex-display").first).to_be_visible()
    typeset = page.evaluate(
        "() => Array.from(document.querySelectorAll('#lesson .math')).map(e => !!e.querySelector('.katex'))"
    )
    assert typeset and all(typeset), typeset
    shot(page, "student-04-lesson-math")

    # -- the concept page: the lesson, the editor holding the skeleton
    page.goto("/concepts")
    card(page, SLUG).get_by_role("link", name=title).click()
    expect(page).to_have_url(re.compile(f"/concepts/{SLUG}$"))
    expect(page.locator("#lesson h1")).to_have_text(title)
    expect(page.locator(".CodeMirror")).to_be_visible()
    expect(page.locator("textarea#editor")).to_be_hidden()  # replaced by the editor
    expect(page.locator("#concept-status")).to_have_text("unlocked")
    skeleton = (EXERCISE / "skeleton.py").read_text()
    assert editor_value(page) == skeleton
    expect(page.locator(".CodeMirror-code")).to_contain_text(skeleton.splitlines()[0])  # drawn, not only held
    shot(page, "student-05-concept-editor")

    # -- the public tests on the skeleton: a failure, which does not count
    public_id = submit(page, "#run-public")
    assert wait_verdict(page, server) == "failed"
    expect(page.locator("#verdict-status")).to_have_text("Failed")
    expect(page.locator("h1")).to_contain_text(f"public tests #{public_id}")
    expect(page.locator("#unlocked")).to_have_count(0)
    expect(page.locator("#mistakes .mistake").first).to_be_visible()
    shot(page, "student-06-public-failed")
    page.goto("/concepts")
    expect(card(page, SLUG)).to_have_attribute("data-status", "unlocked")
    expect(page.locator("main")).to_contain_text(f"0 of {total} passed")

    # -- a known-wrong solution: failed, with the failing test's hint
    page.goto(f"/concepts/{SLUG}")
    expect(page.locator("#history")).to_contain_text("public tests")
    set_editor(page, WRONG.read_text())
    wrong_id = submit(page, "#submit")
    assert wrong_id > public_id
    assert wait_verdict(page, server) == "failed"
    expect(page.locator("#verdict-status")).to_have_text("Failed")
    # the hint heads its group of failing tests
    expect(page.locator("#mistakes .mistake h3").filter(has_text=WRONG_HINT)).to_have_count(1)
    expect(page.locator("#mistakes .mistake h3").filter(has_text=WRONG_HINT)).to_be_visible()
    expect(page.locator("#unlocked")).to_have_count(0)
    shot(page, "student-07-failed")

    # -- the correct solution: progress shown live, then passed, and the next concept unlocked
    page.get_by_role("link", name=f"Back to {title}").click()
    expect(page).to_have_url(re.compile(f"/concepts/{SLUG}$"))
    assert editor_value(page) == WRONG.read_text()  # the last submission is back in the editor
    set_editor(page, CORRECT.read_text())
    page.evaluate(f"() => sessionStorage.removeItem('{LIVE_KEY}')")
    passed_id = submit(page, "#submit")
    assert wait_verdict(page, server) == "passed"
    seen: list[str] = json.loads(page.evaluate(f"() => sessionStorage.getItem('{LIVE_KEY}') || '[]'"))
    (ARTIFACTS / "student-live-status.txt").write_text("\n".join(seen) + "\n")
    assert any(text.startswith(("Queued", "Running test")) for text in seen), seen
    assert seen[-1] == "Done: loading the results…", seen  # the page reloaded itself when done
    expect(page.locator("#verdict-status")).to_have_text("Passed")
    expect(page.locator("h1")).to_contain_text(f"submission #{passed_id}")
    assert page.locator("#tests tbody tr").count() == page.locator("#tests tbody tr.passed").count() > 0
    unlocked = page.locator("#unlocked .unlocked-concept")
    expect(unlocked).to_have_count(len(opens))
    assert sorted(unlocked.all_inner_texts()) == sorted(catalog[slug]["title"] for slug in opens)
    assert catalog[SLUG]["performance"], "causal masking declares performance checks: the chart shows them"
    expect(page.locator("#perf-chart")).to_be_visible()
    drawn = page.evaluate(
        "() => !!(window.Chart && window.Chart.getChart(document.getElementById('perf-chart')))"
    )
    assert drawn, "the performance chart was not drawn"
    shot(page, "student-08-passed")

    # -- the unlocked concept opens; the map shows causal masking passed
    unlocked.first.click()
    alternatives = "|".join(map(re.escape, opens))
    expect(page).to_have_url(re.compile(rf"/concepts/({alternatives})$"))
    expect(page.locator("#concept-status")).to_have_text("unlocked")
    expect(page.locator("#locked-reason")).to_have_count(0)
    expect(page.locator("#submit")).to_be_enabled()
    page.goto("/concepts")
    expect(card(page, SLUG)).to_have_attribute("data-status", "passed")
    for slug in opens:
        expect(card(page, slug)).to_have_attribute("data-status", "unlocked")
    for slug in stays:
        expect(card(page, slug)).to_have_attribute("data-status", "locked")
    expect(page.locator("main")).to_contain_text(f"1 of {total} passed")
    shot(page, "student-09-concept-map-after")
