"""Several cookie secrets (tornado_app/cookie_secrets.py): the newest signs, the older ones
still verify, a removed one verifies nothing, and values signed before key versions (one
plain secret) still verify. The rotation on real servers is in test_rotation.py."""

from __future__ import annotations

import pytest
from tornado.web import create_signed_value, decode_signed_value, get_signature_key_version

from tornado_app.app import make_app
from tornado_app.cookie_secrets import (
    LEGACY_KEY_VERSION,
    CookieSecrets,
    SecretsCollide,
    key_version,
    split_secrets,
)
from tornado_app.cookies import SESSION_COOKIE, session_id_from_cookie
from tornado_app.sessions import new_session_id
from tornado_app.xsrf import session_form_token, session_form_token_matches

OLD, NEW = "the-old-secret-" + "a" * 20, "the-new-secret-" + "b" * 20


def signed_by(secrets: CookieSecrets, session_id: str) -> str:
    """What the app writes: Tornado's create_signed_value with the app's settings."""
    settings = secrets.tornado_settings()
    return create_signed_value(settings["cookie_secret"], SESSION_COOKIE, session_id, key_version=settings["key_version"]).decode()


def test_a_secret_has_one_version_everywhere_and_never_the_legacy_one() -> None:
    assert key_version(NEW) == key_version(NEW) == CookieSecrets(NEW, [OLD]).signing_version
    assert key_version(OLD) != key_version(NEW)
    assert all(key_version(f"secret-{n}") != LEGACY_KEY_VERSION for n in range(2000))
    assert CookieSecrets(NEW).by_version == {key_version(NEW): NEW}


def test_the_newest_signs_and_the_value_carries_its_version() -> None:
    session_id = new_session_id()
    value = signed_by(CookieSecrets(NEW, [OLD]), session_id)
    assert get_signature_key_version(value) == key_version(NEW)
    assert session_id_from_cookie(CookieSecrets(NEW), value) == session_id  # a server with only the new one


def test_an_old_secret_verifies_what_it_signed_until_it_is_removed() -> None:
    session_id = new_session_id()
    before = signed_by(CookieSecrets(OLD), session_id)
    assert session_id_from_cookie(CookieSecrets(NEW, [OLD]), before) == session_id
    assert session_id_from_cookie(CookieSecrets(NEW), before) is None


def test_a_value_signed_before_key_versions_verifies_under_any_listed_secret() -> None:
    """What the app wrote before this change: one plain secret, key version 0."""
    session_id = new_session_id()
    legacy = create_signed_value(OLD, SESSION_COOKIE, session_id).decode()
    assert get_signature_key_version(legacy) == LEGACY_KEY_VERSION
    assert session_id_from_cookie(CookieSecrets(OLD), legacy) == session_id  # the upgrade, same secret
    assert session_id_from_cookie(CookieSecrets(NEW, [OLD]), legacy) == session_id  # then a rotation
    assert session_id_from_cookie(CookieSecrets(NEW), legacy) is None
    assert session_id_from_cookie(CookieSecrets(NEW, ["a-third-secret"]), legacy) is None


def test_a_value_of_a_listed_secret_is_verified_without_reading_its_key_version_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every connect verifies its cookie: the secret its key version names is tried first
    (one parse of the value), and the key version is read apart only when that fails, to
    try a legacy value under each secret."""
    from tornado_app import cookie_secrets

    read: list[object] = []

    def reading(value: str | bytes) -> int | None:
        read.append(value)
        return get_signature_key_version(value)

    monkeypatch.setattr(cookie_secrets, "get_signature_key_version", reading)
    session_id = new_session_id()
    secrets = CookieSecrets(NEW, [OLD])
    assert session_id_from_cookie(secrets, signed_by(secrets, session_id)) == session_id
    assert session_id_from_cookie(secrets, signed_by(CookieSecrets(OLD), session_id)) == session_id
    assert read == []
    legacy = create_signed_value(OLD, SESSION_COOKIE, session_id).decode()
    assert session_id_from_cookie(secrets, legacy) == session_id
    assert session_id_from_cookie(secrets, signed_by(CookieSecrets("a-third-secret"), session_id)) is None
    assert len(read) == 2


def test_a_value_signed_now_verifies_under_the_previous_release() -> None:
    """Going back a release (one plain secret) logs nobody out: Tornado then ignores the version."""
    session_id = new_session_id()
    value = signed_by(CookieSecrets(OLD), session_id)
    assert decode_signed_value(OLD, SESSION_COOKIE, value, min_version=2) == session_id.encode()


def test_a_version_pointing_at_another_listed_secret_is_refused() -> None:
    """A value signed with the old secret but relabelled with the new one's version (or 0)
    is checked against the secret its label names, or for 0 against each: never passes."""
    session_id = new_session_id()
    forged = create_signed_value("attacker", SESSION_COOKIE, session_id, key_version=key_version(NEW)).decode()
    assert session_id_from_cookie(CookieSecrets(NEW, [OLD]), forged) is None
    relabelled = signed_by(CookieSecrets(OLD), session_id).replace(f"|{len(str(key_version(OLD)))}:{key_version(OLD)}|",
                                                                   f"|{len(str(key_version(NEW)))}:{key_version(NEW)}|")
    assert session_id_from_cookie(CookieSecrets(NEW, [OLD]), relabelled) is None


def test_the_form_token_is_made_under_the_newest_and_accepted_under_any_listed() -> None:
    session_id = new_session_id()
    before = session_form_token(CookieSecrets(OLD), session_id)
    assert session_form_token_matches(CookieSecrets(NEW, [OLD]), session_id, before)
    assert not session_form_token_matches(CookieSecrets(NEW), session_id, before)
    after = session_form_token(CookieSecrets(NEW, [OLD]), session_id)
    assert session_form_token_matches(CookieSecrets(NEW), session_id, after)
    assert not session_form_token_matches(CookieSecrets(OLD), session_id, after)


def test_repeats_are_listed_once_and_a_collision_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CookieSecrets(NEW, [OLD, NEW, OLD, ""]).secrets == (NEW, OLD)
    with pytest.raises(ValueError, match="required"):
        CookieSecrets("")
    monkeypatch.setattr("tornado_app.cookie_secrets.key_version", lambda secret: 7)
    with pytest.raises(SecretsCollide):
        CookieSecrets(NEW, [OLD])


def test_no_secret_shows_in_its_repr() -> None:
    assert OLD not in repr(CookieSecrets(NEW, [OLD])) and NEW not in repr(CookieSecrets(NEW, [OLD]))


def test_the_environment_lists_secrets_separated_by_commas_or_whitespace() -> None:
    assert split_secrets(" one,two\tthree\n four,, ") == ["one", "two", "three", "four"]
    assert split_secrets("") == split_secrets(None) == []


def test_the_app_gives_tornado_the_versioned_secrets() -> None:
    """Tornado's own `create_signed_value` (what writes the cookie) signs with the newest."""
    app = make_app(CookieSecrets(NEW, [OLD]))
    assert app.settings["cookie_secret"] == {key_version(NEW): NEW, key_version(OLD): OLD}
    assert app.settings["key_version"] == key_version(NEW)
    assert make_app(NEW).settings["cookie_secret"] == {key_version(NEW): NEW}  # one plain secret, as before
