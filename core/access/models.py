"""Ways in and standing in: API tokens, web sessions and substitutions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.directory.models import User
from core.orm import Base


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # sha256 of the token: tokens are 256-bit random, so a fast hash is enough (unlike passwords)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()


class WebSession(Base):
    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    user_agent: Mapped[str | None] = mapped_column(String(500))

    user: Mapped[User] = relationship()


class LoginThrottle(Base):
    """Failed attempts of one key (``account:<e-mail>``, ``ip:<address>``, ``api-ip:<address>``,
    ``reset:<e-mail>``, ``reset-ip:<address>``) and the cool-down they earned
    (``core.access.throttle``)."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column()
    last_failure_at: Mapped[datetime | None] = mapped_column()


class LoginChallenge(Base):
    """A right password waiting for its second factor: at most :data:`MAX_TRIES` codes, then
    the password step starts over. For the ``email`` method it holds the mailed code (hashed)."""

    __tablename__ = "login_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    # sha256 of the random token the login form carries instead of the password
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # sha256 (keyed by the challenge's token) of the mailed code; None for an authenticator app
    code_hash: Mapped[str | None] = mapped_column(String(64))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()

    user: Mapped[User] = relationship()


class UserTwoStep(Base):
    """The second factor a user chose: ``totp``, ``email`` or ``none``. No row: ``totp`` when
    an authenticator app is set up (``users.totp_secret``), else none."""

    __tablename__ = "user_two_step"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    method: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RecoveryCode(Base):
    """One single-use recovery code for the authenticator app, stored as its sha256."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column()


class Substitution(Base):
    """One person (``substitute``) covering for another (``absent``) within a window."""

    __tablename__ = "substitutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    absent_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    substitute_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    starts_at: Mapped[datetime] = mapped_column()
    ends_at: Mapped[datetime] = mapped_column()
    # Set when ended before ends_at; the substitution stops counting from this instant.
    ended_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))

    absent: Mapped[User] = relationship(foreign_keys=[absent_id])
    substitute: Mapped[User] = relationship(foreign_keys=[substitute_id])
    created_by: Mapped[User | None] = relationship(foreign_keys=[created_by_id])

    def is_active(self, now: datetime) -> bool:
        """Does this substitution count at ``now``?"""
        if self.ended_at is not None and self.ended_at <= now:
            return False
        return self.starts_at <= now < self.ends_at

    def is_over(self, now: datetime) -> bool:
        """Has it ended (by its window or early) by ``now``?"""
        return now >= self.ends_at or (self.ended_at is not None and self.ended_at <= now)
