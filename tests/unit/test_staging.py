import datetime

from api import patients
from seed import store


def test_a_staged_tuple_follows_the_staged_columns() -> None:
    row = patients.to_row(
        {
            "id": 7,
            "patientID": "P7",
            "name": "Ada",
            "age": 36,
            "gender": "Female",
            "medicalCondition": "None",
            "lastVisit": "2024-01-02",
            "insurance": {"plan": "PPO"},
        }
    )

    staged = dict(zip(store.STAGED_COLUMNS, store.staged(3, row, "{...}"), strict=True))

    assert staged == {
        "position": 3,
        "id": 7,
        "patient_id": "P7",
        "name": "Ada",
        "age": 36,
        "gender": "Female",
        "medical_condition": "None",
        "last_visit": datetime.date(2024, 1, 2),
        "extra": '{"insurance": {"plan": "PPO"}}',
        "raw": "{...}",
        "bucket": None,
        "reason": None,
    }
