"""The words the page shares with the server (reasons.py): embedded once in the live view."""

from __future__ import annotations

import json
import re

import pytest

from tornado_app import reasons

WORDS_BLOCK = re.compile(r'<script type="application/json" id="server-words">(.*?)</script>', re.DOTALL)


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
