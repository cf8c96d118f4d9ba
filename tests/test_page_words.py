"""The words the page shares with the server (reasons.py): embedded once in the live view, and
every way a session can end has a sentence on the page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tornado_app import reasons

SESSION_JS = Path(__file__).resolve().parent.parent / "web" / "static" / "js" / "session.js"
WORDS_BLOCK = re.compile(r'<script type="application/json" id="server-words">(.*?)</script>', re.DOTALL)


def endings_on_the_page() -> set[str]:
    """The keys of `const ENDINGS = {...};` in session.js, one `key: "sentence",` a line."""
    source = SESSION_JS.read_text()
    block = re.search(r"^const ENDINGS = \{$(.*?)^\};$", source, re.DOTALL | re.MULTILINE)
    assert block, "session.js has no `const ENDINGS = {` ... `};` block"
    return set(re.findall(r"^\s+(\w+): \"", block.group(1), re.MULTILINE))


@pytest.mark.gen_test
async def test_the_live_view_embeds_exactly_the_servers_words(web_user) -> None:
    user = web_user()
    await user.login("ada")
    page = (await user.get("/")).body.decode()
    blocks = WORDS_BLOCK.findall(page)
    assert len(blocks) == 1
    assert json.loads(blocks[0]) == reasons.for_the_page()


@pytest.mark.gen_test
async def test_the_logged_out_page_has_no_words_block(web_user) -> None:
    """Only the live view's script reads them; probe.js shows the refusal as it comes."""
    page = (await web_user().get("/")).body.decode()
    assert 'id="server-words"' not in page


def test_every_end_reason_but_gone_has_a_sentence_on_the_page() -> None:
    """A reason added on the server without words on the page fails here. "gone" (it ended in
    another process, found later by a check) gets the page's general "the server ended it"."""
    assert endings_on_the_page() == set(reasons.END_REASONS) - {"gone"}


def test_nothing_the_server_or_the_page_says_claims_that_nothing_is_lost() -> None:
    """Issue 22: the 503 page said "Nothing is lost" while a chat sent meanwhile was dropped.
    Messages are now refused while the store is away (the page keeps the text), but a Redis
    restarted empty loses every session: no page, refusal or script says nothing is lost.
    (The 503 page's words are read from a real server in tests/test_outages.py.)"""
    root = Path(__file__).resolve().parent.parent
    sources = [*(root / "web" / "templates").glob("*.html"), *(root / "web" / "static" / "js").glob("*.js"),
               root / "tornado_app" / "reasons.py", root / "tornado_app" / "handlers.py"]
    claims = [str(path.relative_to(root)) for path in sources if "nothing is lost" in " ".join(path.read_text().lower().split())]
    assert claims == []
