"""The benchmark's own logic: memory summed over a process tree, and its capacity rows."""

import os
import subprocess
import sys
from collections.abc import Iterator

import benchmark
import pytest


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


def test_process_tree_holds_this_process_and_the_child_it_started(
    child: subprocess.Popen[bytes],
) -> None:
    tree = benchmark.process_tree(os.getpid())

    assert tree[0] == os.getpid()
    assert child.pid in tree


def test_memory_of_a_tree_sums_its_processes_and_keeps_the_largest(
    child: subprocess.Popen[bytes],
) -> None:
    memory = benchmark.memory_of(benchmark.process_tree(os.getpid()))
    mine, childs = benchmark.rss_mib(os.getpid()), benchmark.rss_mib(child.pid)

    assert memory.processes >= 2
    assert childs > 0
    assert memory.largest_mib == pytest.approx(max(mine, childs), rel=0.2)
    assert memory.total_mib >= memory.largest_mib + childs * 0.5


def test_memory_of_a_process_that_is_gone_is_nothing(child: subprocess.Popen[bytes]) -> None:
    child.kill()
    child.wait()

    assert benchmark.memory_of([child.pid]) == benchmark.Memory()


def test_peak_memory_keeps_each_figures_maximum() -> None:
    early = benchmark.Memory(total_mib=120.0, largest_mib=70.0, processes=3)
    late = benchmark.Memory(total_mib=110.0, largest_mib=80.0, processes=2)

    assert early.peak(late) == benchmark.Memory(120.0, 80.0, 3)


def make_result(**overrides: object) -> dict[str, object]:
    result: dict[str, object] = {
        "ok_per_second": 500.0,
        "latency_ms": {"50": 3.0, "99": 12.5},
        "non_2xx": 1,
        "socket_errors": 2,
        "connections": 16,
        "other_cpu": 0.03,
        "peak_rss_mib": None,
        "peak_instance_rss_mib": None,
    }
    return result | overrides


def test_capacity_rows_are_one_per_size_scenario_and_server() -> None:
    crowd = make_result(peak_rss_mib=210.0, peak_instance_rss_mib=95.0, connections=50)
    results = {
        1000: {"scenarios": {"page": {"ours": make_result(), "json-server": make_result()}}},
        10000: {"scenarios": {"crowd": {"ours": crowd}}},
    }

    rows = benchmark.capacity_rows(results, 2)

    assert [(row["size"], row["scenario"], row["server"]) for row in rows] == [
        (1000, "page", "ours"),
        (1000, "page", "json-server"),
        (10000, "crowd", "ours"),
    ]
    assert rows[0] | {"other_cpu": 0} == {
        "size": 1000,
        "scenario": "page",
        "server": "ours",
        "instances": 2,
        "pool_max": 10,
        "connection_budget": 20,
        "connections": 16,
        "req_per_s": 500.0,
        "p99_ms": 12.5,
        "failures": 3,
        "peak_rss_mib": None,
        "peak_instance_rss_mib": None,
        "other_cpu": 0,
    }
    assert (rows[1]["instances"], rows[1]["connection_budget"]) == (1, None)
    assert (rows[2]["peak_rss_mib"], rows[2]["peak_instance_rss_mib"]) == (210.0, 95.0)
