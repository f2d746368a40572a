"""An instructor's pages, in a real browser: log in, see every exercise, upload a new version of
one (validated by the worker through the queue, then published), have a zip that climbs out of
its folder refused, and find a student in the cohort, the submissions browser and the queue."""

from __future__ import annotations

import io
import json
import re
import shutil
import time
import tomllib
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect
from sqlalchemy import func, select

from grader.catalog import content_hash
from grader.store import ExercisePackage, Role, User
from tests.e2e.conftest import ROOT, Server, shot
from web import accounts
from web.services.concepts import passed_slugs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

EXERCISES = ROOT / "exercises"
SOLUTIONS = ROOT / "solutions"
# validating an upload grades the reference, the skeleton and every wrong variant on one worker
VALIDATION_TIMEOUT_S = 300.0
STUDENT = {"email": "grace.cohort@e2e.example", "password": "grace-cohort-password", "name": "Grace Cohort"}
WRONG = SOLUTIONS / "causal-masking" / "wrong" / "half_compute.py"  # fails: "failed" in the cohort
# The exercise uploaded as a new version: the quickest to validate, measured with `grader exercise
# validate` (about 27 s here, the others 47 to 180 s): the time goes to the reference's and the
# too-slow variants' measurements.
PACKAGE_SLUG = "lora-layer"


def new_version(slug: str, into: Path, marker: str) -> tuple[Path, Path]:
    """A copy of `slug`'s exercise and solution folders whose README.md ends with a Markdown
    comment: the same exercise, a different content hash."""
    exercise = shutil.copytree(
        EXERCISES / slug, into / "exercise" / slug, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    solutions = shutil.copytree(
        SOLUTIONS / slug, into / "solutions" / slug, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    readme = exercise / "README.md"
    readme.write_text(readme.read_text() + f"\n[//]: # ({marker})\n")
    # three quick wrong variants are enough to show the report (measuring a too-slow one is the
    # slow part of validating); the curriculum's own test validates them all
    variants = sorted((solutions / "wrong").glob("*.py"))
    quick = [v for v in variants if "# expect: failed" in v.read_text()][:3]
    for variant in set(variants) - set(quick):
        variant.unlink()
    return exercise, solutions


def zip_package(exercise: Path, solutions: Path, extra: dict[str, bytes] | None = None) -> bytes:
    """The upload layout: exercise/ and solutions/ at the top of the zip."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for area, base in (("exercise", exercise), ("solutions", solutions)):
            for path in sorted(base.rglob("*")):
                if path.is_file():
                    archive.writestr(f"{area}/{path.relative_to(base).as_posix()}", path.read_bytes())
        for name, data in (extra or {}).items():
            archive.writestr(name, data)
    return buffer.getvalue()


def api(
    server: Server, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{server.url}{path}", data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def student_with_a_submission(server: Server) -> tuple[int, str]:
    """A student of this test's own, with one submission (one that fails) made through the API;
    its id and the student's API token."""
    accounts.create_user(server.factory, STUDENT["email"], STUDENT["password"], STUDENT["name"])
    status, body = api(
        server,
        "POST",
        "/api/v1/tokens",
        {"email": STUDENT["email"], "password": STUDENT["password"], "name": "e2e"},
    )
    assert status == 201, body
    token = body["token"]
    status, body = api(
        server,
        "POST",
        "/api/v1/submissions",
        {
            "exercise": "causal-masking",
            "source": WRONG.read_text(),
            "filename": "attention.py",
            "kind": "submit",
        },
        token,
    )
    assert status == 201, body
    assert body["state"] in ("queued", "running")
    return int(body["id"]), token


def wait_done(server: Server, submission_id: int, token: str, timeout: float = 180) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def finished() -> None:
        status, body = api(server, "GET", f"/api/v1/submissions/{submission_id}", token=token)
        assert status == 200, body
        found.update(body)
        if body["state"] not in ("done", "system_error"):
            time.sleep(0.5)
            raise AssertionError(f"submission {submission_id} is {body['state']}")

    server.wait(finished, timeout, f"submission {submission_id} to be graded")
    return found


def package_count(server: Server) -> int:
    with server.factory() as session:
        return session.scalar(select(func.count()).select_from(ExercisePackage)) or 0


def test_instructor_pages(pages: Callable[[str], Page], server: Server, tmp_path: Path) -> None:
    submission_id, token = student_with_a_submission(server)
    slugs = sorted(p.parent.name for p in EXERCISES.glob("*/exercise.toml"))
    slug = PACKAGE_SLUG
    title = tomllib.loads((EXERCISES / slug / "exercise.toml").read_text())["title"]
    exercise_dir, solutions_dir = new_version(slug, tmp_path / "package", f"e2e upload {time.time_ns()}")
    wrong = sorted(p.stem for p in (solutions_dir / "wrong").glob("*.py"))
    version = content_hash(exercise_dir, solutions_dir)
    bundled = content_hash(EXERCISES / slug, SOLUTIONS / slug)
    assert version != bundled
    good_zip = tmp_path / f"{slug}.zip"
    good_zip.write_bytes(zip_package(exercise_dir, solutions_dir))
    evil_zip = tmp_path / "evil.zip"
    evil_zip.write_bytes(zip_package(exercise_dir, solutions_dir, {"../evil.py": b"print('outside')\n"}))

    page = pages("instructor")

    # -- log in (a wrong password first)
    page.goto("/instructor/exercises")
    expect(page).to_have_url(re.compile(r"/login\?next=/instructor/exercises$"))
    shot(page, "instructor-01-login")
    page.fill('input[name="email"]', server.instructor_email)
    page.fill('input[name="password"]', "not-the-password")
    with page.expect_response(lambda r: r.url.endswith("/login") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Log in").click()
    assert answer.value.status == 401
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    page.fill('input[name="password"]', server.instructor_password)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/instructor/exercises$"))
    expect(page.locator("header.top nav")).to_contain_text(server.instructor_name)

    # -- every exercise is listed, each with its live version
    rows = page.locator("#exercise-list tbody tr[data-slug]")
    expect(rows).to_have_count(len(slugs))
    assert sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.slug)")) == slugs
    row = page.locator(f'#exercise-list tr[data-slug="{slug}"]')
    expect(row.locator("td").nth(1)).to_have_text(bundled[:12])
    expect(row.locator("td").nth(2)).to_have_text("bundled")
    expect(page.locator(".problems")).to_have_count(0)  # nothing failed to load
    shot(page, "instructor-02-exercises")

    # -- a zip with an entry that climbs out of its folder is refused, and nothing is kept
    before = package_count(server)
    page.get_by_role("link", name="Upload an exercise or a new version").click()
    expect(page).to_have_url(re.compile(r"/instructor/upload$"))
    shot(page, "instructor-03-upload")
    page.set_input_files("#zip", str(evil_zip))
    with page.expect_response(
        lambda r: r.url.endswith("/instructor/upload") and r.request.method == "POST"
    ) as answer:
        page.click("#upload")
    assert answer.value.status == 422
    expect(page).to_have_url(re.compile(r"/instructor/upload$"))
    error = page.locator("#upload-error")
    expect(error).to_contain_text("The upload was refused")
    expect(error).to_contain_text("'../evil.py' climbs out of the package")
    assert package_count(server) == before
    assert list(server.data_dir.rglob("evil.py")) == [] and not (server.data_dir.parent / "evil.py").exists()
    shot(page, "instructor-04-upload-refused")

    # -- a new version of a real exercise: validated on the worker, then published
    page.set_input_files("#zip", str(good_zip))
    page.click("#upload")
    page.wait_for_url(re.compile(r"/instructor/packages/\d+$"))
    expect(page.locator(".flash")).to_have_text(f"Uploaded {slug}; validation is queued.")
    expect(page.locator("h1")).to_contain_text(f"version {version[:12]}")
    state = page.locator("#package-state")
    assert state.get_attribute("data-state") in ("queued", "validating")
    expect(page.locator("#publish")).to_have_count(0)  # not before it is valid
    ended = re.compile(r"^(valid|invalid|error|published)$")
    server.wait(
        lambda: expect(state).to_have_attribute("data-state", ended, timeout=5_000),
        VALIDATION_TIMEOUT_S,
        "the package's validation",
    )
    message = page.locator("#package-message")
    detail = message.inner_text() if message.count() else ""
    assert state.get_attribute("data-state") == "valid", f"validation ended {state.inner_text()}: {detail}"
    checks = page.locator("#checks tbody tr")
    subjects = checks.evaluate_all("rows => rows.map(r => r.cells[0].textContent.trim())")
    assert sorted(subjects) == sorted(["reference", "skeleton", *(f"wrong/{name}" for name in wrong)])
    expect(page.locator("#checks tbody tr.passed")).to_have_count(len(subjects))
    expect(page.locator("#checks tbody tr.failed")).to_have_count(0)
    shot(page, "instructor-05-package-valid")
    page.click("#publish")
    expect(page.locator(".flash")).to_have_text(f"Published: students now see this version of {slug}.")
    expect(page.locator("#package-state")).to_have_attribute("data-state", "published")
    expect(page.locator("#publish")).to_have_count(0)

    page.get_by_role("link", name="Exercises", exact=True).first.click()
    expect(page).to_have_url(re.compile(r"/instructor/exercises$"))
    row = page.locator(f'#exercise-list tr[data-slug="{slug}"]')
    expect(row.locator("td").nth(1)).to_have_text(version[:12])
    expect(row.locator("td").nth(2)).to_have_text("upload")
    expect(row.locator("td").nth(4)).to_have_text("")  # nothing pending
    expect(page.locator("#exercise-list tbody tr[data-slug]")).to_have_count(len(slugs))
    shot(page, "instructor-06-exercises-published")
    row.get_by_role("link", name=title).click()
    expect(page.locator("#packages")).to_contain_text("published")
    expect(page.locator("main")).to_contain_text(f"Live version {version[:12]}")

    # -- the cohort: every student (this test's own, and the other file's if it ran)
    graded = wait_done(server, submission_id, token)
    assert graded["status"] == "failed", graded
    with server.factory() as session:
        students = list(session.execute(select(User.id, User.name).where(User.role == Role.STUDENT)))
    page.get_by_role("link", name="Cohort", exact=True).click()
    expect(page).to_have_url(re.compile(r"/instructor/cohort$"))
    body = page.locator("#cohort tbody")
    expect(body.locator("tr")).to_have_count(len(students))
    columns = page.locator("#cohort thead th a").all_inner_texts()
    assert sorted(columns) == slugs

    def cell(name: str, concept: str) -> Locator:
        row = body.locator("tr").filter(has=page.get_by_role("link", name=name, exact=True))
        return row.locator("td.cell").nth(columns.index(concept))

    for user_id, name in students:
        expect(body).to_contain_text(name)
        for passed in passed_slugs(server.factory, user_id):  # the other file's learner, if it ran
            expect(cell(name, passed)).to_contain_text("✓")
    expect(body).not_to_contain_text(server.instructor_name)
    expect(cell(STUDENT["name"], "causal-masking")).to_have_text(re.compile(r"^failed\s+1$"))
    expect(cell(STUDENT["name"], "causal-masking")).to_have_class(re.compile(r"\bfailed\b"))
    shot(page, "instructor-07-cohort")

    # -- the submissions browser, filtered to that student
    page.get_by_role("link", name="Submissions", exact=True).click()
    expect(page).to_have_url(re.compile(r"/instructor/submissions$"))
    expect(page.locator("#submissions")).to_contain_text(STUDENT["name"])
    page.fill('input[name="who"]', "grace")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/instructor/submissions\?who=grace"))
    expect(page.locator("h1 small")).to_have_text("1")
    only = page.locator("#submissions tbody tr")
    expect(only).to_have_count(1)
    expect(only.locator("td").nth(1)).to_have_text(str(submission_id))
    expect(only).to_contain_text("causal-masking")
    expect(only.locator(".status")).to_have_text("failed")
    shot(page, "instructor-08-submissions")

    # -- the queue: the session's one worker
    page.get_by_role("link", name="Queue", exact=True).click()
    expect(page).to_have_url(re.compile(r"/instructor/queue$"))
    workers = page.locator("#workers tbody tr")
    expect(workers).to_have_count(1)
    expect(workers.locator("td").first).to_contain_text(f":{server.worker_process.pid}:")
    expect(workers.locator("td").nth(2)).to_have_text("cpu, lti")  # grades for LMSs ride on cpu workers
    expect(page.locator("#queues")).to_contain_text("cpu")
    expect(page.locator("#queues")).to_contain_text("lti")
    shot(page, "instructor-09-queue")
    server.check_running()
