"""Import benchmark (a script, not a test): generate N patients, import them, report the figures.

    .venv/bin/python scripts/benchmark_import.py [--records 1000000]

Runs a throwaway PostgreSQL 17 (fsync off: this measures the importer, not the disk), writes a
db.json of N deterministic patients, runs `python -m seed import` as a child process, and prints
wall time, rows/s and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import random
import resource
import subprocess
import sys
import tempfile
import time

import localpg

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # migrator, when run as `python scripts/benchmark_import.py`

from migrator import runner  # noqa: E402

NAMES = ("Ada", "José", "Zoë", "Chen", "Aisha", "Liam", "Mia", "Noah", "Élodie", "Yuki", "Omar")
SURNAMES = ("Lovelace", "Álvarez", "Ørsted", "Wei", "Khan", "O'Connor", "Smith", "Tanaka", "Haddad")
CONDITIONS = ("Hypertension", "Diabetes Type 2", "Asthma", "Migraine", "Arthritis", "COPD")
GENDERS = ("Female", "Male", "Non-binary", "")


def generate(path: pathlib.Path, records: int) -> None:
    """Stream a db.json of `records` patients; about 5% carry a nested extra field."""
    rng = random.Random(20261122)  # noqa: S311 (test data, not secrets)
    with path.open("w", encoding="utf-8") as file:
        file.write('{"patients": [\n')
        for number in range(1, records + 1):
            record: dict[str, object] = {
                "id": number,
                "patientID": f"P{number:07d}",
                "name": f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}",
                "age": rng.randint(0, 100),
                "gender": rng.choice(GENDERS),
                "medicalCondition": rng.choice(CONDITIONS),
                "lastVisit": f"20{rng.randint(10, 24)}-{rng.randint(1, 12):02d}-"
                f"{rng.randint(1, 28):02d}",
            }
            if rng.random() < 0.05:
                record["insurance"] = {"provider": rng.choice(("Aetna", "Cigna")), "plan": "PPO"}
            file.write(("" if number == 1 else ",\n") + json.dumps(record, ensure_ascii=False))
        file.write("\n]}\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="import-bench-") as scratch:
        db_json = pathlib.Path(scratch) / "db.json"
        started = time.perf_counter()
        generate(db_json, args.records)
        size_mb = db_json.stat().st_size / 1e6
        print(
            f"generated {args.records:,} patients ({size_mb:.0f} MB) in "
            f"{time.perf_counter() - started:.1f} s"
        )
        with localpg.throwaway_cluster(REPO / ".cache" / "pg17") as cluster:
            runner.apply(cluster.url())
            env = {**os.environ, "DATABASE_URL": cluster.url()}
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "seed", "import", str(db_json)],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(result.stdout.strip())
    if result.returncode != 0:
        print(result.stderr.strip(), file=sys.stderr)
        return 1
    print(
        f"import: {seconds:.1f} s wall, {args.records / seconds:,.0f} rows/s, "
        f"peak RSS {peak_mb:.0f} MB (targets: < 60 s, < 300 MB at 1,000,000)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
