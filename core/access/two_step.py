"""Authenticator codes (TOTP, RFC 6238): secrets, the enrolment QR code, replay-safe checks.

A code is accepted for the current 30-second step or one step either side (clocks on phones
drift), and each step at most once: the step of the last accepted code is kept on the user,
so a code read over a shoulder or from a log cannot log in a second time (RFC 6238 5.2).
Enrolling, turning off and resetting are ``core.access.accounts``' business; this module holds no
session and writes nothing but the user's last step.
"""

from __future__ import annotations

import hmac
import time

import pyotp
import segno

from core.directory.models import User

ISSUER = "Pulpit"
# One step either side: a phone up to 30 s fast or slow still logs in.
VALID_WINDOW = 1


def new_secret() -> str:
    """A fresh 160-bit secret, base32 as authenticator apps take it."""
    return pyotp.random_base32()


def readable_secret(secret: str) -> str:
    """The secret in groups of four, for typing it into an app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def provisioning_uri(secret: str, email: str, issuer: str = ISSUER) -> str:
    """The ``otpauth://`` address an authenticator app reads from the QR code."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def qr_svg(uri: str) -> str:
    """The QR code of ``uri`` as inline SVG (no image file, no external service)."""
    return str(segno.make(uri, error="m").svg_inline(scale=4, title="QR"))


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to within the window, or None when it matches none."""
    digits = "".join(code.split())
    if not digits.isdigit() or len(digits) != 6:
        return None
    totp = pyotp.TOTP(secret)
    moment = time.time() if now is None else now
    step = int(moment // totp.interval)
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        candidate = step + offset
        if hmac.compare_digest(totp.generate_otp(candidate), digits):
            return candidate
    return None


def accept_code(user: User, code: str, now: float | None = None) -> bool:
    """True, and the step remembered, when ``code`` is valid for ``user`` and not used yet."""
    if not user.totp_secret:
        return False
    step = matching_step(user.totp_secret, code, now)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        return False
    user.totp_last_step = step
    return True
