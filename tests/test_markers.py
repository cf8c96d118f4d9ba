"""The test suite's own selection: the `process` marker applied automatically, the guard that
fails an unmarked test starting a child process, and `heavy` left out unless -m names it.
Every check runs pytest in this process (pytester), so none of it is a `process` test."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess

import pytest

from tests.support.process_marker import ProcessGuard

pytest_plugins = ["pytester"]

# The sample suite loads this project's conftest as a plugin, with the markers of setup.cfg.
SAMPLE_CONFTEST = 'pytest_plugins = ["tests.conftest"]\n'
SAMPLE_INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
markers =
    e2e: a browser or a window
    heavy: minutes
    process: starts a process
"""

SELECTION = '''
import pytest

PROCESS_FIXTURES = {"own_server"}


@pytest.fixture
def own_server():
    yield "started in the test's module"


def test_plain():
    pass


@pytest.mark.heavy
def test_heavy():
    pass


@pytest.mark.e2e
def test_browser():
    pass


def test_server(server_process):
    pass


def test_redis(redis_url):
    pass


def test_own_server(own_server):
    pass


@pytest.mark.process
def test_marked_by_hand():
    pass


@pytest.mark.heavy
@pytest.mark.process
def test_heavy_process():
    pass
'''


@pytest.fixture
def pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """pytester without the installed plugins (hypothesis, coverage, Tornado's): a second faster."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def selected(pytester: pytest.Pytester, *args: str) -> set[str]:
    pytester.makeconftest(SAMPLE_CONFTEST)
    pytester.makeini(SAMPLE_INI)
    pytester.makepyfile(test_sample=SELECTION)
    result = pytester.runpytest_inprocess("--collect-only", "-q", *args)
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED), result.stdout.str()
    return {line.split("::")[1] for line in result.outlines if "::" in line}


PROCESS_TESTS = {"test_browser", "test_server", "test_redis", "test_own_server", "test_marked_by_hand"}


@pytest.mark.parametrize(("args", "expected"), [
    ((), {"test_plain"} | PROCESS_TESTS),
    (("-m", "not e2e"), {"test_plain"} | PROCESS_TESTS - {"test_browser"}),
    (("-m", "not process"), {"test_plain"}),
    (("-m", "heavy"), {"test_heavy", "test_heavy_process"}),
    (("-m", "heavy or e2e and not process"), {"test_heavy", "test_heavy_process"}),
    (("-m", "e2e", "-m", "not heavy and not e2e"), {"test_plain"} | PROCESS_TESTS - {"test_browser"}),
], ids=["no -m", "not e2e", "not process", "heavy", "heavy or e2e and not process", "the last -m"])
def test_heavy_tests_run_only_when_the_marker_expression_names_them_and_process_ones_are_marked(
    pytester: pytest.Pytester, args: tuple[str, ...], expected: set[str],
) -> None:
    """`-m "not e2e"` once ran the heavy tests too (it replaced setup.cfg's `-m "not heavy"`);
    a test that starts a process through a fixture, or is e2e, is `process` without a word."""
    assert selected(pytester, *args) == expected


GUARDED = '''
import asyncio
import multiprocessing
import os
import subprocess
import threading

import pytest


def test_subprocess():
    subprocess.run(["true"])


def test_asyncio():
    async def start():
        await asyncio.create_subprocess_exec("true")
    asyncio.run(start())


def test_multiprocessing():
    multiprocessing.Process(target=print).start()


def test_os_system():
    os.system("true")


def test_swallowed_in_a_thread():
    thread = threading.Thread(target=subprocess.run, args=(["true"],))
    thread.start()
    thread.join()


def test_swallowed_by_a_bare_except():
    try:
        subprocess.run(["true"])
    except BaseException:
        pass


def test_no_process():
    pass


@pytest.mark.process
def test_marked(process_guard):
    assert process_guard.running is None  # a marked test may start processes


def test_unmarked(process_guard):
    assert process_guard.running.endswith("::test_unmarked")
'''

REFUSED = ["test_subprocess", "test_asyncio", "test_multiprocessing", "test_os_system",
           "test_swallowed_in_a_thread", "test_swallowed_by_a_bare_except"]


def test_an_unmarked_test_that_starts_a_child_process_fails_naming_the_marker(pytester: pytest.Pytester) -> None:
    """Each way of starting a process, tried by an unmarked test of a sample suite: each
    fails, saying to mark it `process` (none is started: the guard stops it first)."""
    pytester.makeconftest(SAMPLE_CONFTEST)
    pytester.makeini(SAMPLE_INI)
    pytester.makepyfile(test_guarded=GUARDED)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(failed=len(REFUSED), passed=3)
    report = result.stdout.str()
    for name in REFUSED:
        assert f"test_guarded.py::{name} " in report or f"test_guarded.py::{name} -" in report, report
    assert report.count("but is not marked `process`") >= len(REFUSED), report
    assert "make test-fast" in report


def test_in_this_suite_an_unmarked_test_cannot_start_a_process(process_guard: ProcessGuard) -> None:
    """The guard of this very run (this test is unmarked): every route refused, nothing started."""
    assert process_guard.running is not None
    try:
        with pytest.raises(pytest.fail.Exception, match="is not marked `process`"):
            subprocess.run(["true"], check=False)
        with pytest.raises(pytest.fail.Exception, match=r"Popen\._execute_child"):
            asyncio.run(asyncio.create_subprocess_shell("true"))
        with pytest.raises(pytest.fail.Exception, match=r"BaseProcess\.start"):
            multiprocessing.Process(target=print).start()
        with pytest.raises(pytest.fail.Exception, match=r"os\.system"):
            os.system("true")
        with pytest.raises(pytest.fail.Exception, match=r"os\.fork"):
            os.fork()
    finally:
        process_guard.attempts.clear()  # refused on purpose: not a test that forgot its marker
