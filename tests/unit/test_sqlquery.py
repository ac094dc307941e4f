import pytest

from api import query, sqlquery

HOSTILE = "x'); DROP TABLE patients; --"


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param(f"{HOSTILE}={HOSTILE}", id="a hostile field name and value"),
        pytest.param(f"name_like={HOSTILE}", id="a hostile pattern"),
        pytest.param(f"q={HOSTILE}", id="a hostile search"),
        pytest.param(f"_sort={HOSTILE}&_order=desc", id="a hostile sort field"),
        pytest.param(f"{HOSTILE}_gte={HOSTILE}", id="a hostile range"),
        pytest.param(f"a.{HOSTILE}.b=1", id="a hostile path"),
    ],
)
def test_nothing_from_the_query_string_reaches_the_sql_text(query_string: str) -> None:
    listing = query.parse(query_string)
    listed = sqlquery.list_statement(listing, 0, 10)
    counted = sqlquery.count_statement(listing)

    for sql in (listed.sql, counted.sql):
        assert "DROP" not in sql
        assert "x'" not in sql
    assert any(HOSTILE in str(value) for value in listed.params), "it is bound instead"


def test_known_fields_use_their_columns_and_others_a_bound_path() -> None:
    statement = sqlquery.list_statement(query.parse("age=45&insurance.plan=PPO"), None, None)

    assert "p.age = ANY(CAST($1 AS bigint[]))" in statement.sql
    assert statement.params[0] == [45]
    assert ["insurance", "plan"] in statement.params


@pytest.mark.parametrize(
    ("query_string", "fragment"),
    [
        pytest.param("age=045", "FALSE", id="a number's text never has a leading zero"),
        pytest.param("lastVisit=2024-02-30", "FALSE", id="no such date"),
        pytest.param("age_gte=abc", "FALSE", id="NaN compares false"),
    ],
)
def test_impossible_comparisons_are_false_without_a_query(query_string: str, fragment: str) -> None:
    assert fragment in sqlquery.list_statement(query.parse(query_string), None, None).sql


def test_total_is_counted_only_when_asked() -> None:
    counted = sqlquery.list_statement(query.parse("_limit=5"), 0, 5)
    plain = sqlquery.list_statement(query.parse(""), None, None)

    assert "patients_counts" in counted.sql
    assert "patients_counts" not in plain.sql
    assert "count(*)" not in plain.sql


@pytest.mark.parametrize(
    ("query_string", "source"),
    [
        pytest.param("_limit=5", "FROM patients_counts", id="all records: the kept count"),
        pytest.param("_limit=5&age=45", "count(*)", id="a filter: counted"),
        pytest.param("_limit=5&q=jo", "count(*)", id="a search: counted"),
    ],
)
def test_only_unfiltered_totals_come_from_the_kept_count(query_string: str, source: str) -> None:
    listing = query.parse(query_string)

    assert source in sqlquery.list_statement(listing, 0, 5).sql
    assert source in sqlquery.count_statement(listing).sql


def test_a_slice_sorts_its_keys_then_reads_only_its_records() -> None:
    statement = sqlquery.list_statement(query.parse("_sort=age&_order=desc&_limit=5"), 0, 5)

    assert "p.extra ? 'age'" in statement.sql, "the key is a literal, so an index can match"
    assert "WHERE w.storage_order = page.k2" in statement.sql


@pytest.mark.parametrize(
    "query_string",
    [
        pytest.param("&".join(f"id={n}" for n in range(1000)), id="a typed column"),
        pytest.param("&".join(f"a.b_ne={n}" for n in range(1000)), id="a JSON path, negated"),
        pytest.param(
            "&".join(f"lastVisit=2024-01-{n % 28 + 1:02}" for n in range(1000)), id="dates"
        ),
    ],
)
def test_a_list_of_values_is_one_bound_array(query_string: str) -> None:
    statement = sqlquery.list_statement(query.parse(query_string), None, None)

    assert len(statement.params) <= 4, "a path, its literal key, the array"
    assert statement.sql.count("= ANY(") == 1


def test_a_stored_number_is_compared_as_javascripts_double_without_overflow() -> None:
    sql = sqlquery.list_statement(query.parse("big_gte=1"), None, None).sql

    assert "::numeric >= CAST(" not in sql, "numeric past 1.8e308 has no double"
    assert str(sqlquery.DOUBLE_OVERFLOW) in sql
