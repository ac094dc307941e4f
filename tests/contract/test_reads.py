"""Reads compared with json-server 0.17.4 on the fixture: every feature of the reference's §6."""

from __future__ import annotations

import pytest

from tests.contract import compare
from tests.contract.compare import Call, Pair


def cases(*pairs: tuple[str, str]) -> list[object]:
    """`pytest.param(query, id=sentence)` for each (sentence, query string) pair."""
    return [pytest.param(query, id=sentence) for sentence, query in pairs]


EQUALITY = cases(
    ("a number matches its text", "age=45"),
    ("45.0 is not the text of 45", "age=45.0"),
    ("045 is not the text of 45", "age=045"),
    ("age 0 matches 0", "age=0"),
    ("an empty value matches no number", "age="),
    ("an empty value matches the empty string", "gender="),
    ("percent-encoded space", "name=John%20Doe"),
    ("plus is a space", "name=John+Doe"),
    ("case-sensitive", "name=john%20doe"),
    ("no substring match", "name=John"),
    ("names differing only in case", "name=anna+berg"),
    ("upper-case duplicate of a name", "name=JOHN%20DOE"),
    ("CJK name", "name=%E7%8E%8B%E5%B0%8F%E6%98%8E"),
    ("accented name", "name=Jos%C3%A9%20%C3%81lvarez"),
    ("apostrophe", "name=Mary%20O%27Brien"),
    ("two keys are ANDed", "gender=Female&age=32"),
    ("lower-case value excluded", "medicalCondition=Hypertension"),
    ("repeated key is an OR", "id=1&id=2&id=99"),
    ("results keep storage order", "id=13&id=3&id=1"),
    ("bracket list", "id[]=1&id[]=3"),
    ("percent-encoded bracket list", "id%5B%5D=50&id%5B%5D=13"),
    ("indexed list", "id[0]=2&id[1]=7"),
    ("the id after the gap", "id=50"),
    ("an id in the gap", "id=40"),
    ("unknown field is ignored", "nonexistent=foo"),
    ("field names are case-sensitive", "Name=John%20Doe"),
    ("patientId is not patientID", "patientId=P001"),
    ("unknown field with a known one", "nonexistent=foo&gender=Male"),
    ("field of a few records applies to all", "email=nobody"),
    ("empty extra string", "email="),
    ("nested path", "insurance.provider=Aetna"),
    ("nested path is case-sensitive", "insurance.provider=aetna"),
    ("nested path with a space", "insurance.plan=Part%20B"),
    ("unknown nested path is ignored", "insurance.nope=x"),
    ("object compares as [object Object]", "insurance=%5Bobject%20Object%5D"),
    ("array compares comma-joined", "allergies=penicillin,peanuts"),
    ("array element alone does not match", "allergies=penicillin"),
    ("empty array compares as empty text", "allergies="),
    ("array index path", "allergies.0=penicillin"),
    ("second array index", "allergies.1=penicillin"),
    ("array index no record has is ignored", "allergies.5=x"),
    ("deeper nested object", "emergencyContact.name=Lucy%20Brown"),
    ("boolean true as text", "vip=true"),
    ("boolean false as text", "vip=false"),
    ("integer extra", "visits=12"),
    ("integer extra with leading zero", "visits=012"),
    ("decimal extra", "score=2.5"),
    ("decimal extra with trailing zero", "score=2.50"),
    ("negative decimal extra", "balance=-12.5"),
    ("null never matches", "notes=null"),
    ("null date never matches", "lastVisit=null"),
    ("date", "lastVisit=2024-01-15"),
    ("mixed-type field, number", "room=12"),
    ("mixed-type field, string", "room=12A"),
    ("emoji value", "nickname=Zo%20%F0%9F%8C%9F"),
    ("object-valued parameter matches nothing", "name[x]=John"),
    ("jQuery cache-buster is ignored", "_=1712345678&gender=Male"),
)

RANGES = cases(
    ("number gte", "age_gte=80"),
    ("number lte", "age_lte=9"),
    ("number between", "age_gte=40&age_lte=50"),
    ("not a number", "age_gte=abc"),
    ("empty is zero for gte", "age_gte="),
    ("empty is zero for lte", "age_lte="),
    ("exponent", "age_gte=1e2"),
    ("hexadecimal", "age_gte=0x50"),
    ("leading space", "age_gte=%2050"),
    ("plus decodes to a leading space", "age_gte=+50"),
    ("explicit plus sign", "age_gte=%2B50"),
    ("Infinity", "age_lte=Infinity"),
    ("leading dot exponent", "age_gte=.5e2"),
    ("decimal bound on integers", "age_lte=32.5"),
    ("repeated gte is an OR", "age_gte=40&age_gte=100"),
    ("repeated lte is an OR", "age_lte=5&age_lte=100"),
    ("date text gte", "lastVisit_gte=2024-03-01"),
    ("date text lte", "lastVisit_lte=2023-10-30"),
    ("date prefix gte", "lastVisit_gte=2024"),
    ("date odd text lte", "lastVisit_lte=2024-1"),
    ("text gte upper-case", "name_gte=W"),
    ("text lte", "name_lte=B"),
    ("lower-case sorts after upper-case", "name_gte=a"),
    ("accented letter", "name_gte=%C3%89"),
    ("CJK bound", "name_gte=%E7%8E%8B"),
    ("number as text bound on text", "name_gte=5"),
    ("patientID text range", "patientID_gte=P030&patientID_lte=p"),
    ("decimal extra", "score_gte=2.5"),
    ("negative bound", "balance_lte=0"),
    ("integer extra", "visits_gte=10"),
    ("nested text", "insurance.provider_gte=a"),
    ("mixed-type field", "room_gte=10"),
    ("unknown field", "nonexistent_gte=1"),
)

NOT_EQUAL = cases(
    ("number", "age_ne=45"),
    ("repeated is an AND", "age_ne=45&age_ne=32"),
    ("text keeps the empty string", "gender_ne=Male"),
    ("missing and null excluded", "email_ne=x"),
    ("unknown field matches nothing", "nonexistent_ne=x"),
    ("nested", "insurance.provider_ne=Aetna"),
    ("boolean", "vip_ne=true"),
    ("array", "allergies_ne=latex"),
    ("only nulls", "notes_ne=x"),
    ("date", "lastVisit_ne=2024-01-15"),
    ("empty value", "medicalCondition_ne="),
)

LIKE = cases(
    ("substring, case-insensitive", "name_like=jo"),
    ("anchored start", "name_like=%5EJ"),
    ("anchored end", "name_like=doe%24"),
    ("dot star", "name_like=j.*s"),
    ("repeated is an OR", "name_like=jo&name_like=smith"),
    ("words", "medicalCondition_like=diabetes"),
    ("numbers as text", "age_like=4"),
    ("accented lower-case", "name_like=%C3%A1"),
    ("accented upper-case", "name_like=%C3%81"),
    ("o with stroke", "name_like=%C3%B8"),
    ("O with stroke", "name_like=%C3%98"),
    ("CJK", "name_like=%E5%B0%8F"),
    ("object text", "insurance_like=object"),
    ("nested", "insurance.plan_like=pp"),
    ("array text", "allergies_like=pea"),
    ("empty pattern", "name_like="),
    ("character class", "name_like=%5B0-9%5D"),
    ("character class range", "patientID_like=%5Ep0%5B0-2%5D"),
    ("alternation", "name_like=zola|hopper"),
    ("escaped dot", "email_like=%5C.org%24"),
    ("dates", "lastVisit_like=2024-0%5B1-3%5D"),
    ("decimals as text", "score_like=%5C.5"),
    ("boolean as text", "vip_like=^t"),
    ("emoji literal", "nickname_like=%F0%9F%8C%9F"),
    ("unknown field matches nothing", "nonexistent_like=foo"),
)

FULL_TEXT = cases(
    ("case-insensitive", "q=john"),
    ("upper-case query", "q=JOHN"),
    ("prefix", "q=hyper"),
    ("patient ids", "q=P01"),
    ("numbers", "q=45"),
    ("dates", "q=2024-01-15"),
    ("nested object values", "q=aetna"),
    ("array elements", "q=peanut"),
    ("email", "q=example.com"),
    ("accents", "q=%C3%A1lvarez"),
    ("accents upper-case", "q=%C3%81LVAREZ"),
    ("o with stroke", "q=%C3%B8rsted"),
    ("object text is not searched", "q=object"),
    ("a space", "q=%20"),
    ("zero skips falsy values", "q=0"),
    ("true", "q=true"),
    ("false values are skipped", "q=false"),
    ("decimal", "q=2.5"),
    ("negative number", "q=-12"),
    ("deeper nested value", "q=lucy"),
    ("emoji", "q=%F0%9F%8C%9F"),
    ("CJK", "q=%E7%8E%8B"),
    ("empty is no filter", "q="),
    ("first of repeated", "q=john&q=jane"),
    ("empty first of repeated", "q=&q=john"),
    ("no regex", "q=.*"),
    ("ANDed with filters", "q=male&gender=Female"),
    ("mixed-type values", "q=12"),
    ("ids", "q=50"),
    ("plus is a space", "q=john+doe"),
)

SORTING = cases(
    ("number", "_sort=age"),
    ("number desc", "_sort=age&_order=desc"),
    ("DESC upper-case", "_sort=age&_order=DESC"),
    ("anything else is asc", "_sort=age&_order=descending"),
    ("text by code unit", "_sort=name"),
    ("text desc", "_sort=name&_order=desc"),
    ("order is positional", "_sort=gender,age&_order=desc"),
    ("two orders", "_sort=gender,age&_order=asc,desc"),
    ("empty first order", "_sort=gender,name&_order=,desc"),
    ("three fields", "_sort=medicalCondition,gender,name&_order=desc,asc,desc"),
    ("empty string first", "_sort=medicalCondition"),
    ("dates", "_sort=lastVisit"),
    ("dates desc, nulls and missing", "_sort=lastVisit&_order=desc"),
    ("few values then missing", "_sort=email"),
    ("missing first when desc", "_sort=email&_order=desc"),
    ("null and missing asc", "_sort=gender"),
    ("null and missing desc", "_sort=gender&_order=desc"),
    ("only nulls", "_sort=notes"),
    ("unknown field keeps storage order", "_sort=nonexistent"),
    ("unknown field desc keeps storage order", "_sort=nonexistent&_order=desc"),
    ("nested path", "_sort=insurance.provider"),
    ("nested path desc", "_sort=insurance.provider&_order=desc"),
    ("booleans", "_sort=vip"),
    ("decimals", "_sort=score"),
    ("negative decimals desc", "_sort=balance&_order=desc"),
    ("integers desc", "_sort=visits&_order=desc"),
    ("id desc", "_sort=id&_order=desc"),
    ("patientID", "_sort=patientID"),
    ("order without sort is ignored", "_order=desc"),
    ("empty sort", "_sort="),
    ("trailing comma", "_sort=name,"),
)

PAGES = cases(
    ("first page", "_page=1"),
    ("second page", "_page=2"),
    ("last page", "_page=4"),
    ("past the end", "_page=5"),
    ("limit 5, page 3", "_page=3&_limit=5"),
    ("parameter order kept in links", "_limit=5&_page=2"),
    ("filtered", "_page=2&_limit=5&gender=Female"),
    ("page 0", "_page=0&_limit=5"),
    ("page 02", "_page=02&_limit=5"),
    ("page 1.5", "_page=1.5&_limit=5"),
    ("limit 0 means 10", "_page=2&_limit=0"),
    ("limit abc means 10", "_page=2&_limit=abc"),
    ("limit 2.7", "_page=2&_limit=2.7"),
    ("only the first page= is rewritten", "_limit=5&_page=2&x=page=2"),
    ("one page holds everything", "_page=1&_limit=40"),
    ("negative page", "_page=-1"),
    ("page abc", "_page=abc"),
    ("negative limit", "_page=2&_limit=-5"),
    ("empty page is no paging", "_page="),
    ("exact last page", "_page=8&_limit=5"),
    ("one past the exact last page", "_page=9&_limit=5"),
    ("repeated limit", "_page=1&_limit=5&_limit=2"),
    ("repeated page", "_page=2&_page=3&_limit=5"),
    ("q with one page", "_page=1&q=john"),
    ("sorted", "_page=2&_limit=6&_sort=name&_order=desc"),
    ("percent-encoded parameter kept in links", "_page=2&_limit=5&name_like=%C3%A9"),
    ("page wins over start and end", "_page=2&_limit=5&_start=1&_end=2"),
)

SLICES = cases(
    ("limit", "_limit=5"),
    ("limit 0", "_limit=0"),
    ("limit abc", "_limit=abc"),
    ("end 0", "_end=0"),
    ("end abc", "_end=abc"),
    ("negative limit", "_limit=-3"),
    ("limit and start", "_limit=5&_start=10"),
    ("start and end", "_start=10&_end=13"),
    ("end wins over limit", "_start=10&_end=13&_limit=1"),
    ("negative end", "_end=-2"),
    ("negative start", "_start=-3&_end=40"),
    ("end past the end", "_start=38&_end=100"),
    ("start after end", "_start=5&_end=2"),
    ("start abc", "_start=abc&_limit=2"),
    ("limit 2.9", "_limit=2.9"),
    ("start 1.9", "_start=1.9&_limit=2"),
    ("start alone is ignored", "_start=10"),
    ("negative start with limit", "_start=-5&_limit=3"),
    ("end is a space", "_end=%20"),
    ("empty limit", "_limit="),
    ("empty end", "_end="),
    ("repeated limit", "_limit=5&_limit=2"),
    ("filtered", "_limit=3&gender=Male"),
)

# A list as long as differences.HUGE_LISTS still compares: 1000 values, two of them real ids.
LONG_LIST = "&".join(f"id={n}" for n in (3, *range(1000, 1997), 13, 9999))

PARSING = cases(
    ("a key without =", "gender"),
    ("empty key and empty pairs", "=foo&&gender=Male&"),
    ("percent-encoded operator suffix", "name%5Flike=jo"),
    ("percent-encoded reserved name", "%5Fsort=age&_limit=3"),
    ("plain and bracket values merge", "id=1&id[]=3"),
    ("a list of 1000 values", LONG_LIST),
    ("limit with a leading space", "_limit=%205"),
    ("limit with trailing junk", "_limit=5abc"),
    ("limit in hexadecimal is 0", "_limit=0x10"),
    ("limit with an exponent", "_limit=1e1"),
    ("page with a leading space", "_page=%202&_limit=5"),
    ("huge page", "_page=99999999999999999999"),
    ("huge limit", "_limit=99999999999999999999"),
    ("huge limit with a page", "_page=1&_limit=99999999999999999999"),
    ("huge start and end", "_start=99999999999999999999&_end=99999999999999999999"),
    ("huge negative start", "_start=-99999999999999999999&_limit=2"),
    ("huge bound", "age_gte=99999999999999999999"),
    ("huge id", "id=99999999999999999999"),
    ("huge id bound", "id_lte=99999999999999999999"),
    ("huge value not equal", "age_ne=99999999999999999999"),
    ("huge pattern", "id_like=99999999999999999999"),
    ("bound beyond a double", "age_lte=1e400"),
    ("negative id", "id=-1"),
    ("decimal id", "id=1.0"),
    ("id with a plus", "id=+1"),
)

COMBINATIONS = cases(
    ("filter, sort desc, page", "gender=Female&_sort=age&_order=desc&_page=2&_limit=3"),
    ("q, range, sort, slice", "q=a&age_gte=30&_sort=name&_start=2&_end=8"),
    ("like, two sorts, limit", "medicalCondition_like=asthma&_sort=age,name&_limit=3"),
    ("nested like, nested sort", "insurance.provider_like=aetna&_sort=insurance.memberNumber"),
    (
        "ranges, ne, date sort, page",
        "age_gte=20&age_lte=60&gender_ne=Male&_sort=lastVisit&_page=2&_limit=4",
    ),
    ("or, ne, q", "id=1&id=3&id=37&age_ne=0&q=doe"),
    ("unknown filter, like, page", "nonexistent=x&name_like=a&_page=3&_limit=4"),
    ("everything empty", "q=&_sort=&_order=&_limit=&_page=&_start=&_end="),
)

ITEMS = cases(
    ("an item", "/patients/1"),
    ("the item after the gap", "/patients/50"),
    ("the last item in the file", "/patients/13"),
    ("an id in the gap", "/patients/40"),
    ("leading zero", "/patients/01"),
    ("decimal", "/patients/1.0"),
    ("not a number", "/patients/abc"),
    ("zero", "/patients/0"),
    ("negative", "/patients/-1"),
    ("huge", "/patients/99999999999999999999"),
    ("trailing slash on the collection", "/patients/"),
    ("double slash on the collection", "/patients//"),
    ("trailing slash on an item", "/patients/1/"),
    ("double trailing slash on an item", "/patients/1//"),
    ("routes are case-insensitive", "/PATIENTS/2"),
    ("mixed case", "/Patients/1"),
    ("a .json suffix", "/patients.json"),
    ("unknown resource", "/nowhere"),
    ("nested unknown target", "/patients/1/visits"),
    ("cache-buster on an item", "/patients/1?_=5"),
    ("query on an item", "/patients/9?name=nobody"),
    ("query on the collection with a trailing slash", "/patients/?_limit=2"),
)


@pytest.mark.parametrize("query", EQUALITY)
def test_equality_filters(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", RANGES)
def test_gte_and_lte(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", NOT_EQUAL)
def test_ne(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", LIKE)
def test_like(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", FULL_TEXT)
def test_full_text_q(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", SORTING)
def test_sort_and_order(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", PAGES)
def test_page_and_limit(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", SLICES)
def test_start_end_and_limit(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", PARSING)
def test_query_string_parsing(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


@pytest.mark.parametrize("query", COMBINATIONS)
def test_combinations(read_pair: Pair, query: str) -> None:
    read_pair.assert_same(compare.get(f"/patients?{query}"))


def test_the_whole_list(read_pair: Pair) -> None:
    read_pair.assert_same(compare.get("/patients"))


@pytest.mark.parametrize("target", ITEMS)
def test_item_and_route_reads(read_pair: Pair, target: str) -> None:
    read_pair.assert_same(compare.get(target))


@pytest.mark.parametrize(
    "target",
    cases(
        ("the list", "/patients"),
        ("an item", "/patients/1"),
        ("a page", "/patients?_page=2&_limit=5"),
        ("a slice", "/patients?_start=1&_end=3"),
        ("a missing item", "/patients/999"),
    ),
)
def test_reads_without_an_origin(read_pair: Pair, target: str) -> None:
    read_pair.assert_same(compare.get(target, origin=False))


@pytest.mark.parametrize(
    "target",
    cases(
        ("an item", "/patients/1"),
        ("a page keeps its headers", "/patients?_limit=2"),
        ("a paginated list", "/patients?_page=2&_limit=3"),
        ("a missing item", "/patients/999"),
    ),
)
def test_head(read_pair: Pair, target: str) -> None:
    read_pair.assert_same(Call("HEAD", target))


def preflight(target: str, method: str, headers: str | None) -> Call:
    requested = () if headers is None else (("Access-Control-Request-Headers", headers),)
    return Call(
        "OPTIONS",
        target,
        (("Origin", compare.ORIGIN), ("Access-Control-Request-Method", method), *requested),
    )


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(
            preflight("/patients/1", "PUT", "content-type,authorization"), id="PUT on an item"
        ),
        pytest.param(preflight("/patients/1", "DELETE", None), id="DELETE without headers"),
        pytest.param(preflight("/patients", "POST", "Content-Type"), id="POST, case kept"),
        pytest.param(preflight("/patients/1", "PATCH", "X-Custom, content-type"), id="PATCH"),
        pytest.param(preflight("/patients?_page=2", "GET", "x-requested-with"), id="a GET"),
    ],
)
def test_cors_preflight(read_pair: Pair, call: Call) -> None:
    read_pair.assert_same(call)
