"""Reading the signed session cookie: only our own signature on a well-formed id counts; and
the form token bound to a session."""

from __future__ import annotations

import time

from tornado.web import create_signed_value

from tornado_app.cookies import SESSION_COOKIE, session_id_from_cookie
from tornado_app.sessions import new_session_id
from tornado_app.xsrf import session_form_token, session_form_token_matches

SECRET = "cookie-test-secret"


def sign(value: str, secret: str = SECRET, name: str = SESSION_COOKIE, clock: float | None = None) -> str:
    if clock is None:
        return create_signed_value(secret, name, value).decode()
    return create_signed_value(secret, name, value, clock=lambda: clock).decode()


def test_a_signed_session_id_reads_back() -> None:
    session_id = new_session_id()
    assert session_id_from_cookie(SECRET, sign(session_id)) == session_id


def test_another_secret_is_a_forgery() -> None:
    assert session_id_from_cookie(SECRET, sign(new_session_id(), secret="attacker")) is None


def test_a_value_signed_for_another_cookie_name_is_refused() -> None:
    assert session_id_from_cookie(SECRET, sign(new_session_id(), name="_xsrf")) is None


def test_one_flipped_character_is_refused() -> None:
    signed = sign(new_session_id())
    for index in (5, len(signed) // 2, len(signed) - 1):
        flipped = "A" if signed[index] != "A" else "B"
        assert session_id_from_cookie(SECRET, signed[:index] + flipped + signed[index + 1 :]) is None


def test_garbage_and_empty_values_are_no_session() -> None:
    for garbage in ["", None, "garbage", "2|1:0|10:1|7:session|4:abcd|", "|||||", "2|" * 50, "\x00\xff", b"\xff\xfe"]:
        assert session_id_from_cookie(SECRET, garbage) is None


def test_an_old_signature_is_refused() -> None:
    forty_days_ago = time.time() - 40 * 86400
    assert session_id_from_cookie(SECRET, sign(new_session_id(), clock=forty_days_ago)) is None


def test_a_validly_signed_but_oddly_shaped_id_is_refused() -> None:
    assert session_id_from_cookie(SECRET, sign("../../etc/passwd")) is None
    assert session_id_from_cookie(SECRET, sign("short")) is None


# --- The form token of a logged-in page (tornado_app/xsrf.py): bound to its session. -------


def test_a_form_token_matches_its_session_only_and_is_masked_afresh_each_time() -> None:
    ada, grace = new_session_id(), new_session_id()
    first, second = session_form_token(SECRET, ada), session_form_token(SECRET, ada)
    assert first != second  # a page never repeats it (BREACH)
    assert session_form_token_matches(SECRET, ada, first) and session_form_token_matches(SECRET, ada, second)
    assert not session_form_token_matches(SECRET, grace, first)
    assert not session_form_token_matches("another-secret", ada, first)


def test_garbage_and_tampered_form_tokens_never_match() -> None:
    ada = new_session_id()
    token = session_form_token(SECRET, ada)
    flipped = token[:-1] + ("0" if token[-1] != "0" else "1")
    version, mask, masked = token.split("|")
    for garbage in [None, "", "s1", "s1||", "s1|zz|zz", f"s2|{mask}|{masked}", f"s1|{mask}|{masked[:-2]}",
                    f"s1|{mask}|{masked}|x", flipped, f"{version}|{mask[:-2]}|{masked[:-2]}", "\x00\xff", "2|" * 50]:
        assert not session_form_token_matches(SECRET, ada, garbage), garbage
