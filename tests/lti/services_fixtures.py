"""The world of the LTI services tests: the fake platform's services side over HTTPS on
loopback, the tool's key store, a database with one registered platform, a course, a resource
link with a line item and a student who launched from it (rows written directly: launches are
tested elsewhere), and a services client that trusts the test CA."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker

from grader.catalog import Catalog, load_catalog
from grader.jobs import submissions
from grader.lti.keys import KeyStore
from grader.lti.services import Services
from grader.store import (
    LtiContext,
    LtiPlatform,
    LtiResourceLink,
    LtiUser,
    Role,
    User,
    make_engine,
    sessions,
    transaction,
    upgrade,
)
from tests.lti.fake_platform import ThreadedServer
from tests.lti.fake_services import SCORE_SCOPE, FakeServices
from tests.lti.tls import Certs, make_certs

QUEUE_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "queue"
CONCEPT = "quick-sum"
ISSUER = "https://lms.example"
CLIENT_ID = "grader-tool"
CONTEXT_ID = "course-101"
STUDENT_SUB = "lms-student-1"


@dataclass
class ServicesWorld:
    fake: FakeServices
    base: str  # the fake services' https://127.0.0.1:<port>
    certs: Certs
    keys: KeyStore
    factory: sessionmaker[Session]
    redis: Redis
    services: Services
    catalog: Catalog
    platform_id: int
    context_pk: int
    link_pk: int
    lineitem: str
    student_id: int
    lti_user_pk: int

    def grade(self, status: str, *, kind: str = "submit", user_id: int | None = None, **extra: Any) -> int:
        """A submission of the concept graded `status` by a worker, written as workers do
        (`submissions.finish`); returns its id."""
        row = submissions.create(
            self.factory,
            self.catalog.get(CONCEPT),
            b"def row_sums(r): ...",
            "rows.py",
            user_id=user_id or self.student_id,
            kind=kind,
        )
        assert submissions.claim(self.factory, row.id, 1, "w1", 60)
        verdict = {"status": status, "summary": f"{status}", **extra}
        assert submissions.finish(self.factory, row.id, 1, "w1", verdict)
        return row.id


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("lti-services-tls"))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(QUEUE_FIXTURES / "exercises", QUEUE_FIXTURES / "solutions")


@pytest.fixture
def services_world(
    tmp_path: Path, certs: Certs, redis_url: str, catalog: Catalog, database_url: str
) -> Iterator[ServicesWorld]:
    keys = KeyStore(tmp_path / "data")
    keys.current()
    fake = FakeServices(client_id=CLIENT_ID, jwks=keys.jwks)
    server = ThreadedServer(fake, certs.cert, certs.key)
    server.start()
    engine = make_engine(database_url)  # SQLite and PostgreSQL
    upgrade(engine)
    factory = sessions(engine)
    redis = Redis.from_url(redis_url)
    base = server.url
    lineitem = fake.add_lineitem(base, CONTEXT_ID, "Quick sum", CONCEPT)
    fake.add_member(CONTEXT_ID, STUDENT_SUB, "Grace Hopper", "grace@lms.example")
    try:
        with transaction(factory) as session:
            platform = LtiPlatform(
                name="Fake LMS",
                issuer=ISSUER,
                client_id=CLIENT_ID,
                deployment_ids=["deployment-1"],
                auth_login_url=f"{ISSUER}/auth",
                auth_token_url=f"{base}/token",
                key_set_url=f"{ISSUER}/jwks",
            )
            student = User(name="grace", email="grace@lms.example", role=Role.STUDENT)
            session.add_all([platform, student])
            session.flush()
            context = LtiContext(
                platform_id=platform.id,
                context_id=CONTEXT_ID,
                deployment_id="deployment-1",
                title="LLM engineering",
                memberships_url=f"{base}/courses/{CONTEXT_ID}/memberships",
                lineitems_url=f"{base}/courses/{CONTEXT_ID}/lineitems",
                ags_scopes=[SCORE_SCOPE],
            )
            session.add(context)
            session.flush()
            link = LtiResourceLink(
                platform_id=platform.id,
                context_pk=context.id,
                resource_link_id="link-1",
                concept=CONCEPT,
                title="Quick sum",
                lineitem_url=lineitem,
                ags_scopes=[SCORE_SCOPE],
            )
            lti_user = LtiUser(
                issuer=ISSUER,
                sub=STUDENT_SUB,
                user_id=student.id,
                platform_id=platform.id,
                name="Grace Hopper",
                email="grace@lms.example",
                roles=["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"],
                last_launch_at=datetime.datetime.now(datetime.UTC).replace(tzinfo=None),
            )
            session.add_all([link, lti_user])
            session.flush()
            ids = (platform.id, context.id, link.id, student.id, lti_user.id)
        yield ServicesWorld(
            fake=fake,
            base=base,
            certs=certs,
            keys=keys,
            factory=factory,
            redis=redis,
            services=Services(keys, redis, verify=str(certs.ca), timeout_s=30),
            catalog=catalog,
            platform_id=ids[0],
            context_pk=ids[1],
            link_pk=ids[2],
            lineitem=lineitem,
            student_id=ids[3],
            lti_user_pk=ids[4],
        )
    finally:
        server.stop()
        redis.close()
        engine.dispose()
