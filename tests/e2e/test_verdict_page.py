"""The verdict of a submission with several mistakes, in a real browser: failures grouped by the
mistake they share, the likeliest root cause first with the case to start from, every test still
one click away, and the page a learner can read in one go."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ARTIFACTS, ROOT, Server, shot
from tests.e2e.test_student import set_editor, submit, wait_verdict
from web import accounts

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SLUG = "causal-masking"
# no 1/sqrt(d) scale, a -1e9 fill, half precision computed in half precision
THREE_MISTAKES = ROOT / "tests" / "fixtures" / "submissions" / "attention_three_mistakes.py"
SCALE_HINT = "forgot the 1/sqrt(d) scale?"
# the page listed every failing row before grouping: over 7,000 px for this submission at 1280
MAX_PAGE_HEIGHT_PX = 3000


def log_in(page: Page, server: Server, email: str) -> None:
    accounts.create_user(server.factory, email, "learner-e2e-password", "Mo Mistakes")
    page.goto("/login")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', "learner-e2e-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("header.top nav")).to_contain_text("Mo Mistakes")


def test_a_submission_with_three_mistakes_reads_as_three_mistakes(
    pages: Callable[[str], Page], server: Server
) -> None:
    page = pages("learner")
    log_in(page, server, "mo.mistakes@e2e.example")
    page.goto(f"/concepts/{SLUG}")
    set_editor(page, THREE_MISTAKES.read_text())
    submit(page, "#submit")
    assert wait_verdict(page, server) == "failed"

    counted = page.locator("#tests-count").inner_text()
    passed, total = map(int, re.match(r"(\d+) of (\d+) passed", counted).groups())  # type: ignore[union-attr]
    groups = page.locator("#mistakes > li.mistake")
    sizes = [int(size) for size in groups.evaluate_all("els => els.map(e => e.dataset.tests)")]
    assert len(sizes) >= 3, sizes  # the three mistakes, not one row per failing test
    assert sizes == sorted(sizes, reverse=True)  # the mistake behind the most failures first
    not_run = page.locator("#skipped-tests tbody tr").count()
    assert sum(sizes) == total - passed - not_run  # every failing test is in exactly one group

    # the root cause first: the missing scale, shown on the public case the learner can run
    first = groups.first
    expect(first.locator(".fix-first")).to_have_text("Fix this first")
    expect(first.locator("h3")).to_contain_text(SCALE_HINT)
    expect(first.locator(".example .badge")).to_have_text("public")
    expect(first.locator(".example pre.message")).to_be_visible()
    expect(page.locator("#mistakes h3").filter(has_text="RuntimeError")).to_have_count(1)  # the -1e9 fill

    # the rest is one click away: a group's tests, told apart by their cases, and the passed ones
    rows = first.locator("details.group-tests tbody tr")
    expect(rows.first).to_be_hidden()
    first.locator("details.group-tests > summary").click()
    expect(rows).to_have_count(sizes[0])
    expect(rows.first).to_be_visible()
    # parametrised rows are told apart: by their cases, as the rows read (test and case columns)
    shown = rows.evaluate_all("rs => rs.map(r => r.cells[0].innerText + ' | ' + r.cells[1].innerText)")
    assert len(set(shown)) == len(shown), shown
    assert first.locator("details.group-tests code.case").count() > 1
    expect(page.locator("#passed-tests tbody tr").first).to_be_hidden()
    page.locator("#passed-tests > summary").click()
    expect(page.locator("#passed-tests tbody tr")).to_have_count(passed)
    first.locator("details.group-tests > summary").click()  # closed again for the screenshot
    page.locator("#passed-tests > summary").click()

    height = page.evaluate("() => document.documentElement.scrollHeight")
    (ARTIFACTS / "verdict-page.txt").write_text(
        f"1280 px wide: {height} px tall; {sum(sizes)} failing tests in {len(sizes)} groups {sizes}\n"
    )
    assert height < MAX_PAGE_HEIGHT_PX, height
    shot(page, "verdict-grouped-1280")
    page.set_viewport_size({"width": 1920, "height": 1000})
    shot(page, "verdict-grouped-1920")
