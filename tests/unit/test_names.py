import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brickyard.core.errors import InvalidParameterValue
from brickyard.core.names import parse_name, quote_part, split_name, validate_part

SAFE = re.compile(r"^[a-z0-9_][a-z0-9_-]*$")
NASTY = st.sampled_from(["'", '"', "`", ";", "--", "/*", "\x00", "\u2019", "..", "/", "\\", " ", "%2e", "\n", "ａ"])


@pytest.mark.parametrize(
    "text, levels, parts",
    [
        ("main", 1, ("main",)),
        ("Main.Default", 2, ("main", "default")),
        ("main.default.my_table", 3, ("main", "default", "my_table")),
        ("`my-cat`.`sch`.t-1", 3, ("my-cat", "sch", "t-1")),
    ],
)
def test_valid_names(text: str, levels: int, parts: tuple[str, ...]) -> None:
    assert parse_name(text, levels).parts == parts


@pytest.mark.parametrize(
    "text, levels, fragment",
    [
        ("main.default", 3, "must have 3 parts"),
        ("a..b", 3, "non-empty"),
        ("a.b.c.d", 3, "must have 3 parts"),
        ("../etc.passwd.x", 3, "must have 3 parts"),
        ("x/y.etc.passwd", 3, "not a valid name"),
        ("a.b.c;drop", 3, "not a valid name"),
        ("`a.b`", 1, "not a valid name"),
        ("`unterminated", 1, "unterminated"),
        ("a.b.", 3, "ends with"),
        ("x" * 256, 1, "limit is 255"),
        ("-lead", 1, "not a valid name"),
        ("", 1, "required"),
    ],
)
def test_invalid_names_say_why(text: str, levels: int, fragment: str) -> None:
    with pytest.raises(InvalidParameterValue, match=re.escape(fragment)):
        parse_name(text, levels)


@given(st.text(max_size=80) | st.lists(st.text(max_size=6) | NASTY, max_size=12).map("".join))
def test_any_text_is_rejected_or_safe(text: str) -> None:
    """No accepted name can carry a path separator, a dot-dot, a quote or a control character."""
    for levels in (1, 2, 3):
        try:
            name = parse_name(text, levels)
        except InvalidParameterValue:
            continue
        for part in name.parts:
            assert SAFE.match(part), part
            assert len(part) <= 255


@given(st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,20}", fullmatch=True))
def test_parts_round_trip(part: str) -> None:
    assert validate_part(part) == part.lower()
    assert split_name(quote_part(part)) == [part]
    assert parse_name(f"{quote_part(part)}.x", 2).parts == (part.lower(), "x")


def test_parsed_names_are_remembered_and_bad_ones_refused_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from brickyard.core import names

    monkeypatch.setattr(names, "_PARSED", {})
    monkeypatch.setattr(names, "_PARSED_MAX", 3)
    first = parse_name("Main.Default.Docs", 3)
    assert parse_name("Main.Default.Docs", 3) is first and first.parts == ("main", "default", "docs")
    assert parse_name("main.default", 2).parts == ("main", "default")  # the level count is part of the key
    for _ in range(2):
        with pytest.raises(InvalidParameterValue, match="index name"):
            parse_name("main.default", 3, what="index name")
    for i in range(10):  # bounded
        parse_name(f"c{i}.s.t", 3)
    assert len(names._PARSED) <= 3
