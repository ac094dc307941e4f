import pytest

from api import store
from tests.integration.helpers import execute, query


def test_the_code_reads_and_writes_exactly_the_migrated_columns(migrated_database_url: str) -> None:
    columns = query(
        migrated_database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'patients'",
    )
    assert {row["column_name"] for row in columns} == {
        *store.DATA_COLUMNS,
        *store.MANAGED_COLUMNS,
    }


def test_the_code_reads_exactly_the_migrated_user_columns(migrated_database_url: str) -> None:
    columns = query(
        migrated_database_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'",
    )
    assert {row["column_name"] for row in columns} == set(store.USER_COLUMNS)


def test_a_user_is_one_row_per_tenant_and_object_id(migrated_database_url: str) -> None:
    insert = "INSERT INTO users (tenant_id, object_id) VALUES (%s, %s)"
    tenant, other_tenant, user = (
        "3f1c8d52-6a0e-4b7f-9c2d-5e8a1b4c7d90",
        "0b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e",
        "1d9e5f0a-2b3c-4d4e-8f5a-6b7c8d9e0f1a",
    )
    execute(migrated_database_url, insert, (tenant, user))
    execute(migrated_database_url, insert, (other_tenant, user))  # the same oid elsewhere
    with pytest.raises(Exception, match="users_tenant_object_key"):
        execute(migrated_database_url, insert, (tenant, user))


def test_updated_at_moves_on_every_update(migrated_database_url: str) -> None:
    execute(migrated_database_url, "INSERT INTO patients (patient_id, name) VALUES ('P1', 'A')")
    before = query(migrated_database_url, "SELECT created_at, updated_at FROM patients")[0]
    execute(migrated_database_url, "UPDATE patients SET name = 'B'")
    after = query(migrated_database_url, "SELECT created_at, updated_at FROM patients")[0]

    assert after["created_at"] == before["created_at"]
    assert after["updated_at"] > before["updated_at"]


@pytest.mark.parametrize(
    ("statement", "constraint"),
    [
        pytest.param(
            "INSERT INTO patients (patient_id, name) VALUES ('P1', 'A'), ('P1', 'B')",
            "patients_patient_id_key",
            id="a duplicate patient_id",
        ),
        pytest.param(
            "INSERT INTO patients (patient_id, name) VALUES ('  ', 'A')",
            "patients_patient_id_not_blank",
            id="a blank patient_id",
        ),
        pytest.param(
            "INSERT INTO patients (patient_id, name, extra) VALUES ('P1', 'A', '[]')",
            "patients_extra_is_object",
            id="extra that is not an object",
        ),
        pytest.param(
            "INSERT INTO patients (id, patient_id, name) VALUES (0, 'P1', 'A')",
            "patients_id_positive",
            id="id zero",
        ),
    ],
)
def test_named_constraints_refuse_bad_rows(
    migrated_database_url: str, statement: str, constraint: str
) -> None:
    with pytest.raises(Exception, match=constraint):
        execute(migrated_database_url, statement)
    assert query(migrated_database_url, "SELECT count(*) AS n FROM patients")[0]["n"] == 0
