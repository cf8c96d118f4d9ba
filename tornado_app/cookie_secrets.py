"""The cookie secrets: the newest signs, the older ones still verify, so that rotating the
secret logs nobody out.

Tornado signs with one of several secrets when its `cookie_secret` setting is a dict
{key version: secret} and its `key_version` setting names the one to sign with; the version
is written into the signed value (format 2: `2|1:<version>|...`) and picks the secret that
verifies it. Here each secret's version is derived from the secret itself (31 bits of a
SHA-256 of it), so the same secret has the same version in every process and after every
restart and nobody numbers anything: a value signed under a secret verifies wherever that
secret is still listed, and nowhere once it is removed. A live session's cookie signed by an
older secret is written again under the newest on the person's next request
(cookies.sign_again_with_the_newest), so removing the old secret logs out only those who
have not been back since the rotation.

A value signed before this (one plain secret: key version 0) is tried against every listed
secret, so deploying this with the site's secret unchanged, then rotating it, logs nobody
out. The other way round, a value signed here verifies under code that knows one plain secret
(Tornado then ignores the version), so going back a release logs nobody out either.

The version says nothing usable about a secret: anyone holding a cookie already holds an
HMAC under that secret to test guesses against, which the version does not make easier.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from tornado.web import decode_signed_value, get_signature_key_version

# The application setting that holds the CookieSecrets; Tornado's own `cookie_secret` holds
# them as Tornado wants them ({key version: secret}, `key_version` naming the newest's).
COOKIE_SECRETS_SETTING = "cookie_secrets"
LEGACY_KEY_VERSION = 0  # what Tornado writes when signing with one plain secret
_VERSION_LABEL = b"tornado_app cookie key version\x00"
_SEPARATORS = re.compile(r"[\s,]+")
# Below this a secret may be found by trying guesses offline against one cookie it signed
# (one HMAC-SHA256 per guess), and the README asks for a long random one: MAKE_A_SECRET's
# `secrets.token_urlsafe(32)` gives 43 characters (32 random bytes).
MIN_SECRET_CHARS = 32
MAKE_A_SECRET = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'


class SecretsCollide(ValueError):
    """Two different secrets with the same version (about one chance in two billion)."""


Secret = str | bytes  # as Tornado takes them; the command line gives text


def key_version(secret: Secret) -> int:
    """This secret's key version: the same in every process, never 0 (legacy values)."""
    digest = hashlib.sha256(_VERSION_LABEL + as_bytes(secret)).digest()
    return 1 + int.from_bytes(digest[:4], "big") % 0x7FFF_FFFF


def as_bytes(secret: Secret) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def split_secrets(text: str | None) -> list[str]:
    """The secrets of an environment variable: separated by commas or whitespace."""
    return [secret for secret in _SEPARATORS.split(text or "") if secret]


class CookieSecrets:
    """The newest secret, which signs, and the older ones, which only verify."""

    def __init__(self, newest: Secret, older: Iterable[Secret] = ()) -> None:
        if not newest:
            raise ValueError("a cookie secret is required")
        listed = [newest] + [secret for secret in older if secret]
        self.secrets: tuple[Secret, ...] = tuple(dict.fromkeys(listed))  # the newest first, each once
        self.by_version: dict[int, Secret] = {}
        for secret in self.secrets:
            if key_version(secret) in self.by_version:
                raise SecretsCollide("two of the cookie secrets have the same key version: replace one of them")
            self.by_version[key_version(secret)] = secret
        self.signing_version = key_version(newest)

    @classmethod
    def of(cls, secrets: CookieSecrets | Secret) -> CookieSecrets:
        return secrets if isinstance(secrets, CookieSecrets) else cls(secrets)

    @property
    def newest(self) -> Secret:
        return self.secrets[0]

    def __repr__(self) -> str:  # never a secret in a log line or a traceback
        return f"CookieSecrets(signing_version={self.signing_version}, older={len(self.secrets) - 1})"

    def tornado_settings(self) -> dict[str, Any]:
        """The application's settings: Tornado's (`RequestHandler.create_signed_value` signs
        with the newest) and this object, for what the app verifies itself."""
        return {"cookie_secret": dict(self.by_version), "key_version": self.signing_version, COOKIE_SECRETS_SETTING: self}

    def decode(self, name: str, value: str | bytes, *, max_age_days: float) -> bytes | None:
        """The payload of a value signed (format 2) by any listed secret: the one its key
        version names, or for a value from before key versions, any. None otherwise."""
        # (Any: Tornado types its dict as all str or all bytes; ours may mix them.)
        # The secret its key version names first: no secret has the legacy version, so a
        # legacy value fails there without a signature computed. Reading the key version
        # before (a second parse of the value's fields) cost ~4 us on every connect.
        by_version: Any = self.by_version
        decoded = decode_signed_value(by_version, name, value, max_age_days=max_age_days, min_version=2)
        if decoded is not None or get_signature_key_version(value) != LEGACY_KEY_VERSION:
            return decoded
        legacy: tuple[Any, ...] = self.secrets
        for secret in legacy:
            decoded = decode_signed_value(secret, name, value, max_age_days=max_age_days, min_version=2)
            if decoded is not None:
                return decoded
        return None
