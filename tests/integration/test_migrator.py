import concurrent.futures
import datetime

from migrator import runner
from tests.integration.helpers import (
    UNREACHABLE_URL,
    execute,
    query,
    run_module,
    table_exists,
)

ALL_MIGRATIONS = sorted(
    path.name.removesuffix(".sql")
    for path in runner.MIGRATIONS_DIR.glob("*.sql")
    if not path.name.endswith(".rollback.sql")
)


def test_migrator_applies_every_migration_then_reports_up_to_date(empty_database_url: str) -> None:
    first = run_module("migrator", database_url=empty_database_url)
    second = run_module("migrator", database_url=empty_database_url)

    assert first.returncode == 0, first.stderr
    for migration_id in ALL_MIGRATIONS:
        assert f"migrator: applied {migration_id}" in first.stdout
    assert table_exists(empty_database_url, "patients")
    assert second.returncode == 0, second.stderr
    assert "applied 0 migration(s)" in second.stdout


def test_migrator_status_lists_pending_migrations(empty_database_url: str) -> None:
    before = run_module("migrator", "status", database_url=empty_database_url)
    runner.apply(empty_database_url)
    after = run_module("migrator", "status", database_url=empty_database_url)

    assert f"{len(ALL_MIGRATIONS)} migration(s) pending" in before.stdout
    assert "0 migration(s) pending" in after.stdout


def test_rollback_undoes_the_schema_and_it_applies_again(migrated_database_url: str) -> None:
    rolled_back = runner.rollback(migrated_database_url, steps=len(ALL_MIGRATIONS))
    assert rolled_back == ALL_MIGRATIONS[::-1]
    assert not table_exists(migrated_database_url, "patients")
    assert not query(
        migrated_database_url, "SELECT 1 FROM pg_proc WHERE proname = 'patients_touch_updated_at'"
    )

    assert runner.apply(migrated_database_url) == ALL_MIGRATIONS
    assert table_exists(migrated_database_url, "patients")


def test_a_stale_yoyo_lock_from_a_killed_migrator_is_broken(empty_database_url: str) -> None:
    runner.apply(empty_database_url)
    # What a migrator killed inside yoyo's lock leaves behind.
    execute(
        empty_database_url,
        "INSERT INTO yoyo_lock (locked, ctime, pid) VALUES (1, %s, 424242)",
        (datetime.datetime(2026, 1, 1),),
    )
    result = run_module("migrator", database_url=empty_database_url)

    assert result.returncode == 0, result.stderr
    assert query(empty_database_url, "SELECT * FROM yoyo_lock") == []


def test_concurrent_migrators_apply_each_migration_once(empty_database_url: str) -> None:
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(runner.apply, [empty_database_url] * 4))

    applied = sorted(migration for result in results for migration in result)
    assert applied == ALL_MIGRATIONS
    log = query(empty_database_url, "SELECT migration_id FROM _yoyo_migration")
    assert sorted(row["migration_id"] for row in log) == ALL_MIGRATIONS


def test_migrator_gives_up_on_an_unreachable_database_with_one_clear_line() -> None:
    result = run_module("migrator", database_url=UNREACHABLE_URL, DB_WAIT_SECONDS="2")

    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1
    assert errors[0].startswith("migrator: error: database at")
    assert "not reachable after 2 s" in errors[0]
    assert ":registry@" not in errors[0], "the password must not be printed"
    assert "waiting for the database" in result.stdout
