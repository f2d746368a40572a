"""The concept page and submitting from it, server side: the page is never stored by the browser,
says which submission its editor starts from, and names pasted code after the exercise's module;
a refused submission goes back to the page (Post/Redirect/Get) with the reason shown once, also
for pasted code larger than the form parser reads; nothing is stored for a refusal."""

from __future__ import annotations

import html
import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from grader.store import Submission
from tests.integration.web_fixtures import (
    OWN_SOURCE,
    Person,
    World,
    add_submission,
    client,
    count,
    log_in,
)
from web.routes.concepts import PASTE_MAX_BYTES
from web.services.submissions import MAX_ACTIVE_PER_USER

SLUG = "causal-masking"  # entrypoint "attention", source_kb 64, open from the start
LOCKED = "rope"  # needs causal-masking
OTHER = "bpe-merges"  # open from the start too
LIMIT_TEXT = "Causal masking takes files of at most 64 KB."
MB = 1024 * 1024


def logged_in(world: World, who: Person) -> tuple[TestClient, str]:
    c = client(world.app)
    return c, log_in(c, who)


def code_of_size(size: int) -> str:
    """Python source of exactly `size` bytes, in lines of 64."""
    line = "x = 1  # " + "-" * 54 + "\n"
    assert len(line) == 64
    text = line * (size // 64)
    return text + "#" * (size - len(text))


def paste(c: TestClient, token: str, source: str, slug: str = SLUG, kind: str = "public") -> Any:
    """Send the concept page's form as a browser does: multipart, with no file chosen."""
    return c.post(
        f"/concepts/{slug}/submissions",
        data={"csrf": token, "source": source, "kind": kind},
        files={"file": ("", b"", "application/octet-stream")},
    )


def shown_error(page: str) -> str | None:
    """The refusal the concept page shows where the learner submits, if any."""
    found = re.search(r'id="submit-error">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else None


def back_on_page(c: TestClient, response: Any, slug: str = SLUG) -> str:
    """A refused submission leads back to its concept page (303), which shows why; the page."""
    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == f"/concepts/{slug}"
    page = c.get(response.headers["location"])
    assert page.status_code == 200
    return page.text


def editor_text(page: str) -> str:
    """What the page's editor starts with."""
    found = re.search(r'<textarea name="source" id="editor"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    assert found is not None, "no editor on the page"
    return html.unescape(found.group(1))


def submissions_of(world: World, who: Person) -> list[Submission]:
    with world.factory() as session:
        return list(session.scalars(select(Submission).where(Submission.user_id == who.id)))


def test_the_concept_page_is_never_stored_and_says_what_its_editor_holds(world: World) -> None:
    c, _ = logged_in(world, world.student)
    first = c.get(f"/concepts/{SLUG}")
    assert first.status_code == 200
    assert first.headers["cache-control"] == "no-store"
    assert 'data-latest=""' in first.text  # nothing submitted: the editor holds the skeleton
    assert 'id="module-name">attention.py<' in first.text
    assert editor_text(first.text) == world.web.exercise(SLUG).skeleton.read_text()
    submission_id = add_submission(world, world.student, SLUG, status=None)
    again = c.get(f"/concepts/{SLUG}")
    assert again.headers["cache-control"] == "no-store"
    assert f'data-latest="{submission_id}"' in again.text
    assert editor_text(again.text) == OWN_SOURCE
    assert f'href="/submissions/{submission_id}"' in again.text  # the history is current
    # what the browser needs to refuse oversized code before sending it, in the server's words
    assert 'data-source-limit="65536"' in again.text
    assert f'data-too-large-module="{{name}} is {{size}}; {LIMIT_TEXT}"' in again.text
    assert 'data-too-large-notebook="{name} is {size}; a notebook may be at most 8 MB.' in again.text


def test_pasted_code_is_named_after_the_exercise_module_with_the_line_breaks_typed(world: World) -> None:
    c, token = logged_in(world, world.student)
    sent = paste(c, token, "x = 1\r\ny = 2\r\n")  # as a browser sends a text box
    assert sent.status_code == 303 and sent.headers["location"].startswith("/submissions/")
    api = client(world.app).post(
        "/api/v1/submissions", headers=world.student.bearer, json={"exercise": SLUG, "source": "z = 3\n"}
    )
    assert api.status_code == 201, api.text
    named = client(world.app).post(
        "/api/v1/submissions",
        headers=world.student.bearer,
        json={"exercise": SLUG, "source": "w = 4\n", "filename": "mine.py"},
    )
    assert named.status_code == 201, named.text
    rows = sorted(submissions_of(world, world.student), key=lambda r: r.id)
    assert [(r.filename, r.source) for r in rows] == [
        ("attention.py", b"x = 1\ny = 2\n"),
        ("attention.py", b"z = 3\n"),
        ("mine.py", b"w = 4\n"),
    ]


def test_code_over_the_limit_goes_back_to_the_page_with_the_reason_shown_once(world: World) -> None:
    c, token = logged_in(world, world.student)
    sent = paste(c, token, code_of_size(100 * 1024))
    page = back_on_page(c, sent)
    assert shown_error(page) == f"attention.py is 100 KB; {LIMIT_TEXT}"
    assert 'role="alert"' in page
    # a reload: the page without the reason, and nothing sent again
    again = c.get(f"/concepts/{SLUG}")
    assert again.status_code == 200 and shown_error(again.text) is None
    assert count(world, Submission) == 0


def test_code_over_the_form_parsers_part_limit_gets_the_same_message(world: World) -> None:
    """2 MB is over the multipart parser's default limit for a text field (1 MB): it is read, and
    refused like any code over the exercise's limit, by its exact size."""
    c, token = logged_in(world, world.student)
    page = back_on_page(c, paste(c, token, code_of_size(2 * MB)))
    assert shown_error(page) == f"attention.py is 2 MB; {LIMIT_TEXT}"
    # CRLF line breaks, as a browser sends them, do not count: the code is measured as typed
    crlf = code_of_size(2 * MB).replace("\n", "\r\n")
    page = back_on_page(c, paste(c, token, crlf))
    assert shown_error(page) == f"attention.py is 2 MB; {LIMIT_TEXT}"
    assert count(world, Submission) == 0


def test_code_larger_than_is_ever_read_is_refused_by_the_request_size(world: World) -> None:
    c, token = logged_in(world, world.student)
    size = PASTE_MAX_BYTES + MB
    page = back_on_page(c, paste(c, token, code_of_size(size)))
    error = shown_error(page)
    assert error is not None and error.endswith(f"; {LIMIT_TEXT}"), error
    said = re.fullmatch(r"attention\.py is ([\d.]+) MB; .*", error)
    assert said is not None, error
    assert size / MB <= float(said.group(1)) <= size / MB + 0.1  # the request's size, rounded up
    # without a CSRF token too: nothing is stored, the page only says why
    page = back_on_page(c, paste(c, "", code_of_size(size)))
    assert shown_error(page) == error
    # a locked concept says it is locked, whatever the size
    page = back_on_page(c, paste(c, token, code_of_size(size), slug=LOCKED), slug=LOCKED)
    assert (shown_error(page) or "").endswith("is locked: pass causal-masking first.")
    assert count(world, Submission) == 0


def test_a_refusal_on_one_concept_is_not_shown_on_another(world: World) -> None:
    c, token = logged_in(world, world.student)
    sent = paste(c, token, code_of_size(100 * 1024))
    assert sent.status_code == 303
    assert shown_error(c.get(f"/concepts/{OTHER}").text) is None
    assert shown_error(c.get(f"/concepts/{SLUG}").text) is None  # shown once: on the next page


def test_too_many_waiting_goes_back_to_the_page_and_a_reload_sends_nothing(world: World) -> None:
    for _ in range(MAX_ACTIVE_PER_USER):
        add_submission(world, world.student, SLUG, status=None)
    c, token = logged_in(world, world.student)
    before = count(world, Submission)
    page = back_on_page(c, paste(c, token, "def mine():\n    pass\n"))
    assert shown_error(page) == f"you have {MAX_ACTIVE_PER_USER} submissions waiting; wait for one to finish"
    for _ in range(2):  # reloads of the page it went back to
        assert shown_error(c.get(f"/concepts/{SLUG}").text) is None
    assert count(world, Submission) == before


def test_the_csrf_token_is_still_needed_and_a_malformed_form_is_not_too_large(world: World) -> None:
    c, token = logged_in(world, world.student)
    for bad in ("", "invented"):
        refused = paste(c, bad, code_of_size(2 * MB))
        assert refused.status_code == 403 and "The form expired" in refused.text
    malformed = c.post(  # no boundary: unreadable, whatever its size
        f"/concepts/{SLUG}/submissions",
        content=b"csrf=" + token.encode() + b"&source=x",
        headers={"content-type": "multipart/form-data"},
    )
    assert malformed.status_code == 400
    assert "location" not in malformed.headers
    assert count(world, Submission) == 0
