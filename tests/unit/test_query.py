import math

import pytest

from api import query
from api.query import Filter, Page, SortKey, Window


@pytest.mark.parametrize(
    ("query_string", "filters"),
    [
        pytest.param("age=45", [Filter(("age",), "eq", ("45",))], id="equality"),
        pytest.param(
            "id=1&id=2", [Filter(("id",), "eq", ("1", "2"))], id="a repeated key is a list"
        ),
        pytest.param("id[]=1&id[]=3", [Filter(("id",), "eq", ("1", "3"))], id="bracket lists"),
        pytest.param(
            "name=John+Doe", [Filter(("name",), "eq", ("John Doe",))], id="plus is a space"
        ),
        pytest.param("name=Jos%C3%A9", [Filter(("name",), "eq", ("José",))], id="percent-decoded"),
        pytest.param(
            "insurance.provider=Aetna",
            [Filter(("insurance", "provider"), "eq", ("Aetna",))],
            id="a dotted path",
        ),
        pytest.param(
            "allergies[0]=x&allergies.1=y",
            [Filter(("allergies",), "eq", ("x",)), Filter(("allergies", "1"), "eq", ("y",))],
            id="array indexes",
        ),
        pytest.param(
            "name[x]=John", [Filter(("name",), "eq", ("[object Object]",))], id="an object value"
        ),
        pytest.param(
            "age_gte=40&age_lte=50&name_like=^J&gender_ne=Male",
            [
                Filter(("age",), "gte", ("40",)),
                Filter(("age",), "lte", ("50",)),
                Filter(("name",), "like", ("^J",)),
                Filter(("gender",), "ne", ("Male",)),
            ],
            id="operators",
        ),
        pytest.param("age=", [Filter(("age",), "eq", ("",))], id="an empty value"),
        pytest.param("callback=cb&_=123&_page=2", [], id="JSONP, cache-buster and _page"),
        pytest.param("_like=x", [Filter(("",), "like", ("x",))], id="an operator on no field"),
    ],
)
def test_parse_filters(query_string: str, filters: list[Filter]) -> None:
    assert list(query.parse(query_string).filters) == filters


@pytest.mark.parametrize(
    ("query_string", "search"),
    [
        pytest.param("q=John", "John", id="lower-cased later, in SQL"),
        pytest.param("q=", None, id="empty: no search"),
        pytest.param("q=john&q=jane", "john", id="repeated: the first one"),
        pytest.param("q=&q=john", "", id="repeated with an empty first: nothing matches"),
        pytest.param("", None, id="absent"),
    ],
)
def test_parse_search(query_string: str, search: str | None) -> None:
    assert query.parse(query_string).search == search


@pytest.mark.parametrize(
    ("query_string", "sort"),
    [
        pytest.param("_sort=age", [SortKey(("age",))], id="one field"),
        pytest.param("_sort=age&_order=DESC", [SortKey(("age",), True)], id="order is caseless"),
        pytest.param(
            "_sort=gender,age&_order=desc",
            [SortKey(("gender",), True), SortKey(("age",))],
            id="orders are positional, asc by default",
        ),
        pytest.param("_sort=age&_order=descending", [SortKey(("age",))], id="only desc is desc"),
        pytest.param("_order=desc", [], id="order without sort"),
        pytest.param("_sort=", [], id="empty sort"),
        pytest.param("_sort=insurance.plan", [SortKey(("insurance", "plan"))], id="a path"),
    ],
)
def test_parse_sort(query_string: str, sort: list[SortKey]) -> None:
    assert list(query.parse(query_string).sort) == sort


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param("_sort=age&_sort=name", id="repeated _sort, a 500 in json-server"),
        pytest.param("_sort=age&_order=asc&_order=desc", id="repeated _order"),
    ],
)
def test_parse_refuses_what_json_server_crashes_on(query_string: str) -> None:
    with pytest.raises(query.InvalidQuery):
        query.parse(query_string)


@pytest.mark.parametrize(
    ("query_string", "page", "window", "counted"),
    [
        pytest.param("", None, None, False, id="no slicing"),
        pytest.param("_page=2", Page(2, 10), Window(10, 20), True, id="default page size"),
        pytest.param("_page=3&_limit=5", Page(3, 5), Window(10, 15), True, id="page and limit"),
        pytest.param("_page=0&_limit=5", Page(1, 5), Window(0, 5), True, id="page 0 is 1"),
        pytest.param("_page=abc", Page(1, 10), Window(0, 10), True, id="NaN page is 1"),
        pytest.param("_page=1.5&_limit=2.7", Page(1, 2), Window(0, 2), True, id="parseInt"),
        pytest.param("_page=2&_limit=0", Page(2, 10), Window(10, 20), True, id="limit 0 is 10"),
        pytest.param("_limit=5", None, Window(0, 5), True, id="limit alone"),
        pytest.param("_limit=5&_start=10", None, Window(10, 15), True, id="start and limit"),
        pytest.param("_start=10&_end=13&_limit=1", None, Window(10, 13), True, id="end wins"),
        pytest.param("_end=abc", None, Window(0, None), True, id="NaN end"),
        pytest.param("_start=10", None, None, False, id="start alone is ignored"),
        pytest.param("_limit=", None, None, False, id="an empty limit is falsy"),
        pytest.param("_limit=5&_limit=2", None, Window(0, 5), True, id="a list joins to 5,2"),
        pytest.param("_limit=-3", None, Window(0, -3), True, id="negative"),
    ],
)
def test_parse_slicing(
    query_string: str, page: Page | None, window: Window | None, counted: bool
) -> None:
    parsed = query.parse(query_string)
    assert (parsed.page, parsed.window, parsed.counted) == (page, window, counted)


@pytest.mark.parametrize(
    ("window", "total", "bounds"),
    [
        pytest.param(Window(0, 5), 30, (0, 5), id="a plain slice"),
        pytest.param(Window(28, 100), 30, (28, 2), id="past the end"),
        pytest.param(Window(-3, 30), 30, (27, 3), id="a negative start"),
        pytest.param(Window(0, -2), 30, (0, 28), id="a negative end"),
        pytest.param(Window(5, 2), 30, (5, 0), id="end before start"),
        pytest.param(Window(0, None), 30, (0, 0), id="NaN end"),
        pytest.param(Window(-50, 3), 30, (0, 3), id="start before the beginning"),
    ],
)
def test_window_bounds_follow_javascript_slice(
    window: Window, total: int, bounds: tuple[int, int]
) -> None:
    assert window.bounds(total) == bounds


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("50", 50.0),
        (" 50 ", 50.0),
        ("", 0.0),
        ("1e2", 100.0),
        ("0x50", 80.0),
        ("-2.5", -2.5),
        (".5", 0.5),
        ("Infinity", math.inf),
        ("-Infinity", -math.inf),
        ("abc", None),
        ("4a", None),
        ("0xZZ", None),
        ("1,000", None),
        ("0x" + "f" * 300, math.inf),
        ("1" + "0" * 400, math.inf),
    ],
)
def test_js_number(text: str, number: float | None) -> None:
    assert query.js_number(text) == number


@pytest.mark.parametrize(
    ("values", "number"),
    [(["2"], 2), (["2.7"], 2), ([" -3x"], -3), (["abc"], None), (["5", "2"], 5), (None, None)],
)
def test_js_parse_int(values: list[str] | None, number: int | None) -> None:
    assert query.js_parse_int(values) == number


@pytest.mark.parametrize(
    ("text", "number"), [("45", 45), ("0", 0), ("045", None), ("45.0", None), ("+4", None)]
)
def test_canonical_int(text: str, number: int | None) -> None:
    assert query.canonical_int(text) == number


def many(key: str, count: int, value: str = "x") -> str:
    return "&".join(f"{key}={value}" for _ in range(count))


def fields(count: int, suffix: str = "") -> str:
    return "&".join(f"f{number}{suffix}=x" for number in range(count))


SORT_KEYS = ",".join(f"f{number}" for number in range(query.MAX_SORT_KEYS))
DIGITS = "9" * query.MAX_NUMBER_DIGITS
TEXT = "a" * query.MAX_TEXT_LENGTH


@pytest.mark.parametrize(
    ("at_the_limit", "past_the_limit"),
    [
        pytest.param(
            many("id", query.MAX_PARAMETERS),
            many("id", query.MAX_PARAMETERS + 1),
            id="parameters, one key repeated",
        ),
        pytest.param(
            many("id[]", query.MAX_PARAMETERS),
            many("id[]", query.MAX_PARAMETERS + 1),
            id="parameters, as a bracket list",
        ),
        pytest.param(
            fields(query.MAX_FILTERS), fields(query.MAX_FILTERS + 1), id="distinct filter keys"
        ),
        pytest.param(
            fields(query.MAX_PATTERNS, "_like"),
            fields(query.MAX_PATTERNS + 1, "_like"),
            id="_like patterns on different keys",
        ),
        pytest.param(
            many("name_gte", query.MAX_PATTERNS // 2)
            + "&"
            + many("age_lte", query.MAX_PATTERNS // 2),
            many("name_gte", query.MAX_PATTERNS // 2)
            + "&"
            + many("age_lte", query.MAX_PATTERNS // 2 + 1),
            id="range values, repeated",
        ),
        pytest.param(f"_sort={SORT_KEYS}", f"_sort={SORT_KEYS},id", id="sort keys"),
        pytest.param(
            "_sort=" + "," * (query.MAX_SORT_KEYS - 1),
            "_sort=" + "," * query.MAX_SORT_KEYS,
            id="empty sort keys count",
        ),
        pytest.param(f"name={TEXT}", f"name={TEXT}a", id="a value's length"),
        pytest.param(f"{TEXT}=x", f"{TEXT}a=x", id="a key's length"),
        pytest.param(f"q={TEXT}", f"q={TEXT}a", id="a search's length"),
        pytest.param(f"_page={DIGITS}", f"_page={DIGITS}9", id="digits of _page"),
        pytest.param(f"_limit={DIGITS}", f"_limit=-{DIGITS}9", id="digits of _limit"),
        pytest.param(f"_start=1&_end={DIGITS}", f"_start={DIGITS}9&_end=1", id="digits of _start"),
        pytest.param(f"_end= {DIGITS}", f"_end= {DIGITS}9.5", id="digits of _end"),
    ],
)
def test_parse_refuses_a_query_past_a_limit(at_the_limit: str, past_the_limit: str) -> None:
    query.parse(at_the_limit)
    with pytest.raises(query.InvalidQuery, match="at most"):
        query.parse(past_the_limit)


COPIES = query.MAX_REGEX_COPIES


@pytest.mark.parametrize(
    ("pattern", "copies"),
    [
        pytest.param("^John", 0, id="no repeat"),
        pytest.param(".*John.*", 0, id="loops copy nothing"),
        pytest.param(r"^\d{4}-\d{2}-\d{2}$", 5, id="a date"),
        pytest.param("a{2,5}b", 4, id="the larger bound"),
        pytest.param("(x{3}|y){4}z", 14, id="a group's copies are copied"),
        pytest.param("((a{1,10}){1,10})", 99, id="nested bounds multiply"),
        pytest.param(r"\{1000}", 0, id="an escaped brace is a character"),
        pytest.param(r"(\w*\s*){1,25}x", query.MAX_REGEX_COPIES + 1, id="a loop in a repeat"),
        pytest.param("(a{2,}){3}", query.MAX_REGEX_COPIES + 1, id="an open bound loops"),
    ],
)
def test_regex_copies(pattern: str, copies: int) -> None:
    assert query.regex_copies(pattern) == copies


@pytest.mark.parametrize(
    ("at_the_limit", "past_the_limit"),
    [
        pytest.param(
            f"name_like=.{{1,{COPIES + 1}}}", f"name_like=.{{1,{COPIES + 2}}}", id="one pattern"
        ),
        pytest.param(
            f"name_like=a{{{COPIES // 2 + 1}}}&gender_like=b{{{COPIES // 2 + 1}}}",
            f"name_like=a{{{COPIES // 2 + 1}}}&gender_like=b{{{COPIES // 2 + 2}}}",
            id="all patterns together",
        ),
        pytest.param("name_like=(a)1", r"name_like=(a)\1", id="a back-reference"),
        pytest.param("name_like=(a)+", "name_like=(a%2B){2}", id="a loop in a repeat"),
        pytest.param("name_like=x{" + "9" * 500, "name_like=x{" + "9" * 500 + "}", id="huge"),
    ],
)
def test_parse_refuses_costly_regular_expressions(at_the_limit: str, past_the_limit: str) -> None:
    query.parse(at_the_limit)
    with pytest.raises(query.InvalidQuery, match="_like patterns"):
        query.parse(past_the_limit)


def test_equality_values_are_not_patterns() -> None:
    listing = query.parse(many("name", query.MAX_PATTERNS + 1) + "&" + many("age_ne", 50))
    assert [len(item.values) for item in listing.filters] == [query.MAX_PATTERNS + 1, 50]


URL = "http://h/patients"


@pytest.mark.parametrize(
    ("url", "page", "total", "links"),
    [
        pytest.param(
            f"{URL}?_page=1",
            Page(1, 10),
            30,
            f'<{URL}?_page=1>; rel="first", <{URL}?_page=2>; rel="next", '
            f'<{URL}?_page=3>; rel="last"',
            id="the first page",
        ),
        pytest.param(
            f"{URL}?_page=3",
            Page(3, 10),
            30,
            f'<{URL}?_page=1>; rel="first", <{URL}?_page=2>; rel="prev", '
            f'<{URL}?_page=3>; rel="last"',
            id="the last page",
        ),
        pytest.param(f"{URL}?_page=4", Page(4, 10), 30, "", id="past the end: empty"),
        pytest.param(f"{URL}?_page=1&_limit=30", Page(1, 30), 30, "", id="one page holds all"),
        pytest.param(
            f"{URL}?_page=0&_limit=5",
            Page(1, 5),
            30,
            f'<{URL}?_page=0&_limit=5>; rel="first", <{URL}?_page=0&_limit=5>; rel="next", '
            f'<{URL}?_page=0&_limit=5>; rel="last"',
            id="page 0: the text page=1 is not in the URL",
        ),
        pytest.param(
            f"{URL}?_limit=5&_page=2&x=page=2",
            Page(2, 5),
            30,
            f'<{URL}?_limit=5&_page=1&x=page=2>; rel="first", '
            f'<{URL}?_limit=5&_page=1&x=page=2>; rel="prev", '
            f'<{URL}?_limit=5&_page=3&x=page=2>; rel="next", '
            f'<{URL}?_limit=5&_page=6&x=page=2>; rel="last"',
            id="only the first page= is replaced",
        ),
        pytest.param(
            f"{URL}?_page=1.5&_limit=5",
            Page(1, 5),
            30,
            f'<{URL}?_page=1.5&_limit=5>; rel="first", <{URL}?_page=2.5&_limit=5>; rel="next", '
            f'<{URL}?_page=6.5&_limit=5>; rel="last"',
            id="a fractional page",
        ),
    ],
)
def test_page_links_rewrite_the_raw_url_like_json_server(
    url: str, page: Page, total: int, links: str
) -> None:
    assert query.page_links(url, page, total) == links
