"""The static files, gzipped for a browser that takes gzip: each text file compressed once and
kept in memory, the Socket.IO client's 47 KB sent as 15 KB.

Only files of web/static/ are compressed, and no page: a page carries the session's XSRF token
beside text a request can put there (the name on the login form), which is what BREACH reads
from a compressed answer's length. A static file holds no secret.
"""

from __future__ import annotations

import datetime
import gzip
import mimetypes
from pathlib import Path
from typing import Any

from .handlers import RevalidatedStaticFileHandler

# What is worth compressing: text (scripts, styles, SVG). PNG is compressed already.
COMPRESSIBLE_TYPES = frozenset({"text/javascript", "application/javascript", "text/css", "text/plain", "text/html",
                                "image/svg+xml", "application/json"})
# A larger file is sent as it is, from the disk: what is kept in memory stays small.
MAX_COMPRESSED_FILE_BYTES = 1024 * 1024


def compressible(path: str) -> bool:
    """Whether a file of this name is text worth compressing (by its extension, as Tornado
    chooses its Content-Type)."""
    content_type, encoding = mimetypes.guess_type(path)
    return encoding is None and content_type in COMPRESSIBLE_TYPES


def takes_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header accepts gzip: named (or x-gzip) without q=0."""
    for coding in accept_encoding.split(","):
        name, _, parameters = coding.partition(";")
        if name.strip().lower() not in ("gzip", "x-gzip"):
            continue
        quality = parameters.strip().lower()
        if quality.startswith("q="):
            try:
                return float(quality[2:]) > 0
            except ValueError:
                return False
        return True
    return False


class CompressedFiles:
    """Each static file's gzip, made at its first request and kept: one entry per file of the
    static directory (the handler asks only for files it validated there), made again when
    the file changes (its time or size). Compressing socket.io.min.js at level 9 takes about
    3 ms, once; all of web/static/ takes about 60 KB of memory."""

    def __init__(self) -> None:
        self._kept: dict[str, tuple[datetime.datetime | None, int, bytes | None]] = {}

    def of(self, path: str, modified: datetime.datetime | None, size: int, read: Any) -> bytes | None:
        """The gzip of the file at `path` (`read()` gives its bytes), or None where it is not
        worth it: too large to keep, or not smaller compressed."""
        kept = self._kept.get(path)
        if kept is not None and kept[0] == modified and kept[1] == size:
            return kept[2]
        body = None
        if size <= MAX_COMPRESSED_FILE_BYTES:
            content: bytes = read()
            # mtime=0: the same bytes on every process, so the gzip's ETag means one body.
            compressed = gzip.compress(content, compresslevel=9, mtime=0)
            body = compressed if len(compressed) < len(content) else None
        self._kept[path] = (modified, size, body)
        return body


class StaticFileHandler(RevalidatedStaticFileHandler):
    """Tornado's static files (revalidated when asked for without their version), gzipped
    from memory for a request that accepts gzip. The gzip has an ETag of its own (a 304 works
    for each variant), its own Content-Length, and `Vary: Accept-Encoding` is on both. A Range
    request gets the file as it is (Tornado's ranges of it); the gzip says `Accept-Ranges:
    none`."""

    def initialize(self, path: str, default_filename: str | None = None, allowed_symlink_directory: str | list[str] | None = None,
                   compressed: CompressedFiles | None = None) -> None:
        super().initialize(path, default_filename, allowed_symlink_directory)
        self.compressed = compressed
        self.gzipped: bytes | None = None

    async def get(self, path: str, include_body: bool = True) -> None:
        request = self.request
        if (self.compressed is None or "Range" in request.headers or not compressible(path)
                or not takes_gzip(request.headers.get("Accept-Encoding", ""))):
            await super().get(path, include_body)
            return
        # Tornado's own steps (StaticFileHandler.get), up to the body.
        self.path = self.parse_url_path(path)
        self.absolute_path = self.validate_absolute_path(self.root, self.get_absolute_path(self.root, self.path))
        if self.absolute_path is None:
            return
        self.modified = self.get_modified_time()
        absolute_path = self.absolute_path
        self.gzipped = self.compressed.of(absolute_path, self.modified, self.get_content_size(),
                                          lambda: b"".join(self.get_content(absolute_path)))
        if self.gzipped is None:
            await super().get(path, include_body)
            return
        self.set_headers()
        if self.should_return_304():
            self.set_status(304)
            return
        self.set_header("Content-Encoding", "gzip")
        self.set_header("Accept-Ranges", "none")
        self.set_header("Content-Length", len(self.gzipped))
        if include_body:
            self.write(self.gzipped)

    def compute_etag(self) -> str | None:
        """The file's ETag (its version), with "-gzip" for the gzip: another body, another tag."""
        etag = super().compute_etag()
        if etag is not None and self.gzipped is not None:
            return etag[:-1] + '-gzip"'
        return etag

    def set_extra_headers(self, path: str) -> None:
        super().set_extra_headers(path)
        if self.compressed is not None and compressible(path):
            self.set_header("Vary", "Accept-Encoding")


class PageModules:
    """The live view's ES modules (web/static/js/ but main.js), as the template's
    `page_modules()`: the page names them all as `<link rel="modulepreload">`, so that a
    browser fetches them at once instead of one round trip per level of imports (main.js,
    then what it imports, then what those import: three on a 400 ms link, 1.2 s). Listed once,
    when the app is built; a module added later is fetched as before, when imported."""

    def __init__(self, static_path: Path) -> None:
        self.modules = [f"js/{module.name}" for module in sorted((static_path / "js").glob("*.js")) if module.name != "main.js"]

    def __call__(self, handler: Any) -> list[str]:
        """A Tornado UI method: called with the handler rendering the template."""
        return self.modules
