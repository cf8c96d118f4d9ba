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
