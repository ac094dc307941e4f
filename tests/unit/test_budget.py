import asyncio

import pytest

from api import budget


async def _started(work: asyncio.Future[None] | asyncio.Task[None]) -> None:
    """Let `work` run until it waits."""
    for _ in range(3):
        await asyncio.sleep(0)
    assert not work.done()


def test_bytes_within_the_limit_are_taken_at_once_and_given_back() -> None:
    async def scenario() -> None:
        memory = budget.ByteBudget(10)
        await memory.take(6, mine=0, within=0)
        await memory.take(4, mine=6, within=0)
        assert memory.held == 10
        memory.give_back(10)
        assert memory.held == 0

    asyncio.run(scenario())


def test_a_reader_waits_for_bytes_and_readers_are_served_first_come_first_served() -> None:
    async def scenario() -> list[str]:
        memory = budget.ByteBudget(10)
        await memory.take(8, mine=0, within=0)
        served: list[str] = []

        async def reader(name: str, amount: int) -> None:
            await memory.take(amount, mine=0, within=5)
            served.append(name)

        first = asyncio.create_task(reader("first", 6))
        await _started(first)
        second = asyncio.create_task(reader("second", 2))  # would fit now, but first came first
        await _started(second)
        memory.give_back(8)
        await asyncio.gather(first, second)
        assert memory.held == 8
        return served

    assert asyncio.run(scenario()) == ["first", "second"]


def test_a_reader_that_waited_too_long_is_busy_and_leaves_the_line() -> None:
    async def scenario() -> None:
        memory = budget.ByteBudget(10)
        await memory.take(9, mine=0, within=0)
        with pytest.raises(budget.BudgetBusy):
            await memory.take(5, mine=0, within=0.05)
        behind = asyncio.create_task(memory.take(1, mine=0, within=5))
        await asyncio.wait_for(behind, 1)  # nobody stands in line before it
        assert memory.held == 10

    asyncio.run(scenario())


def test_a_line_moves_on_when_its_head_gives_up() -> None:
    async def scenario() -> None:
        memory = budget.ByteBudget(10)
        await memory.take(5, mine=0, within=0)
        head = asyncio.create_task(memory.take(8, mine=0, within=0.05))
        await _started(head)
        behind = asyncio.create_task(memory.take(5, mine=0, within=5))
        await _started(behind)
        with pytest.raises(budget.BudgetBusy):
            await head
        await asyncio.wait_for(behind, 1)
        assert memory.held == 10

    asyncio.run(scenario())


def test_an_answer_larger_than_the_whole_budget_never_waits() -> None:
    async def scenario() -> None:
        memory = budget.ByteBudget(10)
        with pytest.raises(budget.TooLarge):
            await memory.take(4, mine=7, within=5)
        assert memory.held == 0

    asyncio.run(scenario())


def test_a_cancelled_reader_takes_nothing_whether_or_not_it_was_served() -> None:
    async def scenario() -> None:
        memory = budget.ByteBudget(10)
        await memory.take(10, mine=0, within=0)
        waiting = asyncio.create_task(memory.take(3, mine=0, within=5))
        await _started(waiting)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert memory.held == 10

        served = asyncio.create_task(memory.take(3, mine=0, within=5))
        await _started(served)
        memory.give_back(10)  # grants it...
        served.cancel()  # ...but it is cancelled before it runs again
        with pytest.raises(asyncio.CancelledError):
            await served
        assert memory.held == 0

    asyncio.run(scenario())
