"""The benchmark's own logic: memory summed over a process tree."""

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
