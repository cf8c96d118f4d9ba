"""memo.py: a pure function of a string, remembered within a bound that no flood can grow."""

from __future__ import annotations

from tornado_app.memo import string_memo


def test_an_answer_is_remembered_and_the_function_not_asked_again() -> None:
    asked: list[str] = []

    @string_memo(maxsize=4, longest=10)
    def upper(text: str) -> str:
        asked.append(text)
        return text.upper()

    assert [upper("a"), upper("b"), upper("a"), upper("a")] == ["A", "B", "A", "A"]
    assert asked == ["a", "b"]
    assert upper.__wrapped__.__name__ == "upper"  # type: ignore[attr-defined]


def test_a_flood_of_new_strings_keeps_at_most_maxsize_and_evicts_the_least_recently_used() -> None:
    asked: list[str] = []

    @string_memo(maxsize=4, longest=10)
    def same(text: str) -> str:
        asked.append(text)
        return text

    for n in range(100):
        same(str(n))
    assert same.cache_info().currsize == 4
    asked.clear()
    same("99")
    same("0")
    assert asked == ["0"]  # 99 is kept, 0 was evicted long ago


def test_a_string_longer_than_longest_is_computed_each_time_and_never_kept() -> None:
    asked: list[str] = []

    @string_memo(maxsize=4, longest=10)
    def length(text: str) -> int:
        asked.append(text)
        return len(text)

    long = "x" * 11
    assert [length(long), length(long)] == [11, 11]
    assert asked == [long, long]
    assert length.cache_info().currsize == 0
    assert length("x" * 10) == 10
    assert length.cache_info().currsize == 1
