"""Accounts: sign-up, passwords (argon2id through argon2-cffi), API tokens and the demo logins.

A token is 32 random bytes shown once; only its SHA-256 is stored, so a leaked database does not
leak tokens. Emails are compared in lower case. Nothing here knows about HTTP.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from grader.store import ApiToken, Role, User, transaction
from grader.store.models import utcnow

_hasher = PasswordHasher()
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{1,63}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256
TOKEN_PREFIX = "gr_"
# hashed once at import: verifying an unknown email costs as much as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AccountError(Exception):
    """Sign-up or login refused; the message is safe to show."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def check_signup(email: str, password: str, name: str) -> list[str]:
    problems = []
    if not EMAIL.match(normalise_email(email)):
        problems.append("Enter a valid email address.")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        problems.append(f"Choose a password of {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    if not 1 <= len(name.strip()) <= 80:
        problems.append("Enter a display name (up to 80 characters).")
    return problems


def create_user(
    factory: sessionmaker[Session],
    email: str,
    password: str,
    name: str,
    *,
    role: Role = Role.STUDENT,
    plan: str = "free",
) -> User:
    problems = check_signup(email, password, name)
    if problems:
        raise AccountError(" ".join(problems))
    email = normalise_email(email)
    with factory() as session:
        if session.scalar(select(User.id).where(User.email == email)) is not None:
            raise AccountError("An account with this email exists already: log in instead.")
        taken = {n for (n,) in session.execute(select(User.name).where(User.name.like(f"{name.strip()}%")))}
    display = _unique_name(name.strip(), taken)
    try:
        with transaction(factory) as session:
            user = User(name=display, email=email, password_hash=_hasher.hash(password), role=role, plan=plan)
            session.add(user)
            session.flush()
            return user
    except IntegrityError:  # a concurrent sign-up with the same email or name
        raise AccountError("An account with this email exists already: log in instead.") from None


def _unique_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    n = 2
    while f"{name} ({n})" in taken:
        n += 1
    return f"{name} ({n})"


def authenticate(factory: sessionmaker[Session], email: str, password: str) -> User | None:
    """The user with this email and password, or None (the same time either way)."""
    email = normalise_email(email)
    with factory() as session:
        user = session.scalar(select(User).where(User.email == email))
    if user is None or not user.password_hash:
        _verify(_DUMMY_HASH, password)
        return None
    if not _verify(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        rehashed = _hasher.hash(password)
        with transaction(factory) as session:
            stored = session.get(User, user.id)
            if stored is not None:
                stored.password_hash = rehashed
        user.password_hash = rehashed  # the session records the hash now stored
    return user


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(factory: sessionmaker[Session], user_id: int, name: str) -> tuple[ApiToken, str]:
    """A new token for `user_id`: (its row, the token itself, which is not stored)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction(factory) as session:
        row = ApiToken(
            user_id=user_id, name=name.strip()[:100] or "token", token_hash=_digest(token), prefix=token[:10]
        )
        session.add(row)
        session.flush()
        return row, token


def token_user(factory: sessionmaker[Session], token: str) -> User | None:
    """The owner of a live token, or None; records when it was last used (once a minute at most)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    with factory() as session:
        row = session.scalar(
            select(ApiToken).where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None))
        )
        if row is None:
            return None
        user = row.user
        now = utcnow()
        if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
            row.last_used_at = now
            session.commit()
        session.refresh(user)
        session.expunge(user)
        return user


def revoke_token(factory: sessionmaker[Session], user_id: int, token_id: int) -> bool:
    with transaction(factory) as session:
        row = session.get(ApiToken, token_id)
        if row is None or row.user_id != user_id or row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        return True


def tokens_of(factory: sessionmaker[Session], user_id: int) -> list[ApiToken]:
    with factory() as session:
        return list(
            session.scalars(
                select(ApiToken)
                .where(ApiToken.user_id == user_id, ApiToken.revoked_at.is_(None))
                .order_by(ApiToken.created_at.desc())
            )
        )


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str


DEMO_ACCOUNTS = (
    ("instructor", "instructor@example.com", "Demo Instructor", Role.INSTRUCTOR, "pro"),
    ("student", "student@example.com", "Demo Student", Role.STUDENT, "free"),
)


def seed_demo(factory: sessionmaker[Session], data_dir: Path) -> list[DemoLogin] | None:
    """On a database with no web account yet, create the demo instructor and student with fresh
    random passwords, and keep them in `<data_dir>/demo-logins.txt` (mode 0600). None when
    accounts exist already (the file, if kept, still has the logins)."""
    with factory() as session:
        if session.scalar(select(func.count()).select_from(User).where(User.email.is_not(None))):
            return None
    logins = []
    for role_name, email, name, role, plan in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(9)
        create_user(factory, email, password, name, role=role, plan=plan)
        logins.append(DemoLogin(role_name, email, password))
    path = data_dir / "demo-logins.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        for login in logins:
            f.write(f"{login.role}: {login.email} / {login.password}\n")
    return logins
