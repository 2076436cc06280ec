"""core.access.two_step: codes in the window are accepted once; secrets are shown the way apps take them."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pyotp

from core.access import two_step as totp

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DP"
NOW = 1_800_000_000.0  # a fixed moment; steps are 30 s


def user(secret: str | None = SECRET) -> Any:
    return SimpleNamespace(totp_secret=secret, totp_last_step=None)


def code_at(moment: float) -> str:
    return pyotp.TOTP(SECRET).at(moment)


def test_a_code_of_this_step_or_the_next_or_previous_matches() -> None:
    step = int(NOW // 30)
    assert totp.matching_step(SECRET, code_at(NOW), NOW) == step
    assert totp.matching_step(SECRET, code_at(NOW - 30), NOW) == step - 1
    assert totp.matching_step(SECRET, code_at(NOW + 30), NOW) == step + 1
    assert totp.matching_step(SECRET, code_at(NOW - 90), NOW) is None


def test_spaces_are_forgiven_and_anything_but_six_digits_refused() -> None:
    code = code_at(NOW)
    assert totp.matching_step(SECRET, f" {code[:3]} {code[3:]} ", NOW) is not None
    for bad in ("", "12345", "1234567", "abcdef", code + "0"):
        assert totp.matching_step(SECRET, bad, NOW) is None


def test_a_code_is_accepted_once() -> None:
    someone = user()
    assert totp.accept_code(someone, code_at(NOW), NOW)
    assert not totp.accept_code(someone, code_at(NOW), NOW + 5)  # replayed
    # An older code still inside the window is refused too: steps only move forward.
    assert not totp.accept_code(someone, code_at(NOW - 30), NOW + 5)
    assert totp.accept_code(someone, code_at(NOW + 30), NOW + 30)


def test_a_user_without_a_secret_accepts_no_code() -> None:
    assert not totp.accept_code(user(secret=None), code_at(NOW), NOW)


def test_the_secret_is_shown_in_groups_and_as_a_qr_code() -> None:
    assert totp.readable_secret(SECRET) == "JBSW Y3DP EHPK 3PXP JBSW Y3DP"
    uri = totp.provisioning_uri(SECRET, "anna@serwis.example")
    assert uri.startswith("otpauth://totp/Pulpit:anna%40serwis.example?secret=" + SECRET)
    svg = totp.qr_svg(uri)
    assert svg.startswith("<svg") and "<path" in svg
    assert len(totp.new_secret()) == 32 and totp.new_secret() != totp.new_secret()
