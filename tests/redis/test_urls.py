"""A --redis-url checked before anything starts (tornado_app/redis/urls.py check_redis_url):
each slip a person makes is one line that says what to write, and never shows the password."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tornado_app.redis.urls import FORMS, BadRedisURL, check_redis_url

PASSWORD = "hunter2"


@pytest.mark.parametrize("url, said", [
    # The scheme forgotten, the likeliest slip: what was meant is said, the password masked.
    ("localhost:6391", f"'localhost:6391' has no scheme: write redis://localhost:6391 ({FORMS})"),
    (f":{PASSWORD}@localhost:6391/0", f"'***@localhost:6391/0' has no scheme: write redis://***@localhost:6391/0 ({FORMS})"),
    ("redis:localhost:6391", f"'redis:localhost:6391' has no scheme: write redis://localhost:6391 ({FORMS})"),
    ("/run/redis/redis.sock", f"'/run/redis/redis.sock' has no scheme: write unix:///run/redis/redis.sock ({FORMS})"),
    # Another protocol's scheme.
    (f"http://:{PASSWORD}@localhost:6391/0", "http:// is not a Redis URL's scheme: write redis://***@localhost:6391/0"),
    ("https://cache.example.com:6380/0", "https:// is not a Redis URL's scheme: write rediss://cache.example.com:6380/0"),
    ("valkey://localhost:6379/0", f"valkey:// is not a Redis URL's scheme: write {FORMS}"),
    # Host, port and database.
    ("redis://localhost:abc/0", "redis://localhost:abc/0: the port is a number from 1 to 65535 (got 'abc')"),
    (f"redis://:{PASSWORD}@localhost:99999/0", "redis://***@localhost:99999/0: the port is a number from 1 to 65535 (got '99999')"),
    ("redis://localhost:0/0", "redis://localhost:0/0: the port is a number from 1 to 65535 (got '0'); Redis's own is 6379"),
    ("redis://[::1:6379/0", "redis://[::1:6379/0: an IPv6 address in brackets needs its closing ']', e.g. redis://[::1]:6379/0"),
    ("redis://localhost:6379/zero", "redis://localhost:6379/zero: the path is the database's number, e.g. /0 (got '/zero')"),
    ("redis://localhost:6379/0/1", "redis://localhost:6379/0/1: the path is the database's number, e.g. /0 (got '/0/1')"),
    ("redis://localhost:6379/0#main", "redis://localhost:6379/0#main: a Redis URL has no '#' part"),
    # A password holding a character that ends the userinfo: the clients would read the rest
    # of it as the host or the path. Said without a piece of it.
    ("redis://:hun/ter2@localhost:6379/0",
     "redis://***@localhost:6379/0: a '/', '?' or '#' in the password (or user name) is written %2F, %3F or %23"),
    ("redis://:hun#ter2@localhost:6379/0",
     "redis://***@localhost:6379/0: a '/', '?' or '#' in the password (or user name) is written %2F, %3F or %23"),
    # The query, as redis-py reads it.
    ("redis://localhost:6379/0?colour=blue", "redis://localhost:6379/0?colour=blue: redis-py takes no option 'colour' in a Redis URL"),
    (f"redis://:{PASSWORD}@localhost:6379/?db=x", "redis://***@localhost:6379/?db=x: Invalid value for 'db' in connection URL."),
    (f"redis://localhost:6379/0?password={PASSWORD}&protocol=9",
     "redis://localhost:6379/0?password=***&protocol=9: protocol must be either 2 or 3"),
    # A socket file, by its absolute path.
    ("unix://run/redis.sock", "unix://run/redis.sock: a unix:// URL names the socket file by its absolute path, after three "
                              "slashes: unix:///run/redis.sock"),
    ("unix://", "unix:// names no socket file: write unix:///PATH/TO/redis.sock"),
    # Sentinels: read as before (tests/test_sentinel.py has the rest).
    (f"redis+sentinel://:{PASSWORD}@127.0.0.1:26379/mymaster",
     "a redis+sentinel:// URL ends with /DB/SERVICE (the Sentinels' name for the primary), e.g. "
     "redis+sentinel://:PASSWORD@127.0.0.1:26379,127.0.0.1:26380,127.0.0.1:26381/0/mymaster"),
])
def test_a_malformed_url_is_one_line_saying_what_to_write(url: str, said: str) -> None:
    with pytest.raises(BadRedisURL) as refused:
        check_redis_url(url)
    assert str(refused.value) == said
    assert PASSWORD not in said and "ter2" not in said


@pytest.mark.parametrize("url, used", [
    (f"redis://:{PASSWORD}@127.0.0.1:6379/0", f"redis://:{PASSWORD}@127.0.0.1:6379/0"),
    ("REDIS://Cache:6379/0", "redis://Cache:6379/0"),  # `limits` reads the scheme case-sensitively
    ("redis://", "redis://"),  # redis-py's defaults: localhost:6379, database 0
    ("redis://[::1]:6379/15", "redis://[::1]:6379/15"),
    ("redis://:p%40ss%2Fword@h:1/0", "redis://:p%40ss%2Fword@h:1/0"),
    ("redis://:p@ss@h:1/0", "redis://:p@ss@h:1/0"),  # an "@" needs no escape: the last one ends the userinfo
    ("redis://h:1/99", "redis://h:1/99"),  # whether Redis has a database 99 only Redis can say (at start)
    ("rediss://h:6380/0?ssl_cert_reqs=none&socket_timeout=5", "rediss://h:6380/0?ssl_cert_reqs=none&socket_timeout=5"),
    ("unix:///run/redis/redis.sock?db=2", "unix:///run/redis/redis.sock?db=2"),
    (f"unix://:{PASSWORD}@/run/redis/redis.sock", f"unix://:{PASSWORD}@/run/redis/redis.sock"),
    ("Redis+Sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/0/mymaster", "redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2:26379/0/mymaster"),
])
def test_a_well_formed_url_is_used_as_it_is_its_scheme_in_lower_case(url: str, used: str) -> None:
    assert check_redis_url(url) == used


URL_CHARACTERS = st.sampled_from([*"abc019:/?#@[]%.=&+- _", "redis", "rediss", "unix", "db", "6379", "redis+sentinel", "://"])


@settings(max_examples=400, deadline=None)
@given(scheme=st.sampled_from(["redis", "rediss", "unix", "redis+sentinel", "http", "", "REDIS"]),
       before=st.lists(URL_CHARACTERS, max_size=6).map("".join),
       after=st.lists(URL_CHARACTERS, max_size=12).map("".join))
def test_whatever_is_written_the_answer_is_a_url_or_one_line_without_the_password(scheme: str, before: str, after: str) -> None:
    """Anything at all, around a password in the userinfo: a URL, or BadRedisURL in one line
    without the password; never another exception (argparse would print the URL as it is)."""
    url = f"{scheme}://{before}:{PASSWORD}@{after}" if scheme else f"{before}:{PASSWORD}@{after}"
    try:
        check_redis_url(url)
    except BadRedisURL as refused:
        message = str(refused)
        assert "\n" not in message
        assert PASSWORD not in message, message
