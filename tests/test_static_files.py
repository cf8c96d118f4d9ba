"""The static files over HTTP: gzipped for a client that takes gzip, as they are for one that
does not, cached for long under a versioned URL, and never a page compressed (BREACH)."""

from __future__ import annotations

import gzip
import os
import re
import shutil
from pathlib import Path

import pytest
import tornado.httpclient

from tests.support.clock import FakeClock
from tests.support.constants import ALLOWED_ORIGIN, TEST_SECRET
from tests.support.matching import found
from tornado_app.app import WEB_DIR, TornadoApp, make_app
from tornado_app.backend import Backend
from tornado_app.settings import Settings
from tornado_app.static_files import takes_gzip

GZIP = {"Accept-Encoding": "gzip, deflate, br, zstd"}  # what Chromium sends
TEN_YEARS = 10 * 365 * 24 * 3600  # Tornado's max-age for a versioned URL


@pytest.fixture
def web_dir(tmp_path: Path) -> Path:
    """A copy of web/: a test may change a static file under the running app."""
    shutil.copytree(WEB_DIR, tmp_path / "web")
    return tmp_path / "web"


@pytest.fixture
def app(clock: FakeClock, web_dir: Path) -> TornadoApp:
    settings = Settings.lifted()
    return make_app(TEST_SECRET, settings=settings, backend=Backend.in_memory(settings, clock=clock),
                    allowed_origins=[ALLOWED_ORIGIN], web_dir=web_dir)


async def fetch(user, path: str, headers: dict[str, str] | None = None, method: str = "GET") -> tornado.httpclient.HTTPResponse:
    """The answer's bytes as they came (no decompression), with the user's cookies."""
    cookies = {"Cookie": user.cookie_header} if user.cookies else {}
    return await user.http_client.fetch(user.base_url + path, method=method, headers={**cookies, **(headers or {})},
                                        decompress_response=False, follow_redirects=False, raise_error=False)


@pytest.mark.gen_test
async def test_a_script_is_sent_gzipped_and_unzips_to_the_file(web_user, web_dir: Path) -> None:
    file = (web_dir / "static" / "socket.io.min.js").read_bytes()
    response = await fetch(web_user(), "/static/socket.io.min.js", GZIP)
    assert response.code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Vary"] == "Accept-Encoding"
    assert int(response.headers["Content-Length"]) == len(response.body) < len(file) / 2
    assert gzip.decompress(response.body) == file
    assert response.headers["Content-Type"] == "text/javascript"


@pytest.mark.gen_test
@pytest.mark.parametrize("accept", [None, "identity", "gzip;q=0", "br"])
async def test_without_gzip_accepted_the_file_is_sent_as_it_is(web_user, web_dir: Path, accept: str | None) -> None:
    response = await fetch(web_user(), "/static/app.css", {"Accept-Encoding": accept} if accept else {})
    assert response.code == 200
    assert "Content-Encoding" not in response.headers
    assert response.body == (web_dir / "static" / "app.css").read_bytes()
    assert response.headers["Vary"] == "Accept-Encoding"  # a shared cache keeps the two apart


@pytest.mark.gen_test
async def test_each_encoding_has_its_own_etag_and_its_own_304(web_user) -> None:
    user = web_user()
    zipped, plain = await fetch(user, "/static/js/chat.js", GZIP), await fetch(user, "/static/js/chat.js")
    assert zipped.headers["Etag"] != plain.headers["Etag"]
    assert (await fetch(user, "/static/js/chat.js", {**GZIP, "If-None-Match": zipped.headers["Etag"]})).code == 304
    assert (await fetch(user, "/static/js/chat.js", {"If-None-Match": plain.headers["Etag"]})).code == 304
    # A tag names one body: the gzip's tag does not stand for the plain file.
    assert (await fetch(user, "/static/js/chat.js", {"If-None-Match": zipped.headers["Etag"]})).code == 200


@pytest.mark.gen_test
async def test_head_says_the_gzips_length_and_sends_no_body(web_user) -> None:
    user = web_user()
    zipped = await fetch(user, "/static/js/chat.js", GZIP)
    head = await fetch(user, "/static/js/chat.js", GZIP, method="HEAD")
    assert head.code == 200 and head.body == b""
    assert head.headers["Content-Encoding"] == "gzip"
    assert head.headers["Content-Length"] == zipped.headers["Content-Length"]
    assert head.headers["Etag"] == zipped.headers["Etag"]


@pytest.mark.gen_test
async def test_a_range_gets_the_files_own_bytes(web_user, web_dir: Path) -> None:
    response = await fetch(web_user(), "/static/js/chat.js", {**GZIP, "Range": "bytes=3-12"})
    assert response.code == 206
    assert "Content-Encoding" not in response.headers
    assert response.body == (web_dir / "static" / "js" / "chat.js").read_bytes()[3:13]
    assert response.headers["Accept-Ranges"] == "bytes"
    assert (await fetch(web_user(), "/static/js/chat.js", GZIP)).headers["Accept-Ranges"] == "none"


@pytest.mark.gen_test
async def test_a_versioned_url_is_cached_for_long_and_an_unversioned_one_revalidated(web_user) -> None:
    user = web_user()
    page = (await user.get("/")).body.decode()
    versioned = found(r'src="(/static/socket\.io\.min\.js\?v=[0-9a-f]+)"', page).group(1)
    for headers in (GZIP, {}):
        cached = await fetch(user, versioned, headers)
        assert cached.headers["Cache-Control"] == f"max-age={TEN_YEARS}"
        assert "Expires" in cached.headers
        plain = await fetch(user, "/static/socket.io.min.js", headers)
        assert plain.headers["Cache-Control"] == "no-cache"
        assert "Expires" not in plain.headers


@pytest.mark.gen_test
async def test_no_page_is_compressed_for_it_carries_the_xsrf_token(web_user) -> None:
    user = web_user()
    for path in ("/", "/login"):
        response = await fetch(user, path, GZIP)
        assert response.code == 200 and "Content-Encoding" not in response.headers
        assert b'name="_xsrf"' in response.body
    await user.login("ada")
    live = await fetch(user, "/", GZIP)
    assert live.code == 200 and "Content-Encoding" not in live.headers
    assert b"live-view" in live.body


@pytest.mark.gen_test
async def test_a_picture_is_not_compressed_again(web_user) -> None:
    response = await fetch(web_user(), "/static/icon.png", GZIP)
    assert response.code == 200 and "Content-Encoding" not in response.headers
    assert "Vary" not in response.headers


@pytest.mark.gen_test
async def test_a_file_changed_on_disk_is_sent_changed(web_user, web_dir: Path) -> None:
    user = web_user()
    style = web_dir / "static" / "app.css"
    before = await fetch(user, "/static/app.css", GZIP)
    assert gzip.decompress(before.body) == style.read_bytes()
    changed = style.read_bytes() + b"\n.added { color: inherit; }\n"
    style.write_bytes(changed)
    later = os.stat(style).st_mtime + 5
    os.utime(style, (later, later))
    after = await fetch(user, "/static/app.css", GZIP)
    assert gzip.decompress(after.body) == changed


@pytest.mark.gen_test
async def test_a_path_out_of_the_static_directory_is_refused_as_before(web_user) -> None:
    for path in ("/static/../templates/index.html", "/static/%2e%2e/templates/index.html", "/static/nothing.js"):
        response = await fetch(web_user(), path, GZIP)
        assert response.code in (403, 404), path
        assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize(("header", "takes"), [
    ("gzip", True), ("GZIP", True), ("deflate, gzip;q=0.5", True), ("x-gzip", True), ("gzip ; q=1.0", True),
    ("", False), ("identity", False), ("gzip;q=0", False), ("gzip;q=0.0", False), ("gzip;q=nonsense", False),
    ("br, zstd", False), ("gzipped", False),
])
def test_accept_encoding_is_read_as_written(header: str, takes: bool) -> None:
    assert takes_gzip(header) is takes


@pytest.mark.gen_test
async def test_the_live_view_names_every_module_its_script_imports_for_preloading(web_user, web_dir: Path) -> None:
    """Fetched at once, not one round trip per level of imports (main.js, chat.js, outbox.js)."""
    user = web_user()
    await user.login("ada")
    page = (await user.get("/")).body.decode()
    preloaded = set(re.findall(r'<link rel="modulepreload" href="([^"]+)">', page))
    imported = {f"/static/js/{name}" for script in (web_dir / "static" / "js").glob("*.js")
                for name in re.findall(r'^import [^;]* from "\./([\w-]+\.js)";', script.read_text(), re.MULTILINE)}
    assert len(imported) >= 8
    assert imported <= preloaded
    for url in preloaded:  # each one as the import asks for it: no version, so the same URL
        assert (await fetch(user, url, GZIP)).code == 200
