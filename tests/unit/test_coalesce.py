import asyncio
import itertools
import weakref

import pytest

from api.coalesce import Coalescer


class Source:
    """A query stand-in: each fetch records when it started and waits until released."""

    def __init__(self) -> None:
        self.clock = itertools.count()
        self.started: list[int] = []
        self.release = asyncio.Event()

    async def fetch(self) -> int:
        started = next(self.clock)
        self.started.append(started)
        await self.release.wait()
        return started


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_readers_share_only_a_query_that_starts_after_they_arrive() -> None:
    async def scenario() -> None:
        shared: Coalescer[int] = Coalescer()
        source = Source()
        first = asyncio.ensure_future(shared.run("k", source.fetch))
        await settle()
        arrivals = [next(source.clock) for _ in range(20)]  # while the first query runs
        later = [asyncio.ensure_future(shared.run("k", source.fetch)) for _ in arrivals]
        await settle()
        assert len(source.started) == 1  # the later readers wait for the running query
        source.release.set()
        answers = await asyncio.gather(first, *later)

        assert len(source.started) == 2
        assert answers[0] == source.started[0]
        assert set(answers[1:]) == {source.started[1]}
        assert source.started[1] > max(arrivals)  # never an answer older than the reader
        assert shared.keys_in_flight == 0

    asyncio.run(scenario())


def test_different_keys_never_share() -> None:
    async def scenario() -> None:
        shared: Coalescer[int] = Coalescer()
        source = Source()
        source.release.set()
        answers = await asyncio.gather(*(shared.run(key, source.fetch) for key in "abc"))
        assert sorted(answers) == [0, 1, 2]

    asyncio.run(scenario())


def test_a_reader_that_goes_away_does_not_cancel_the_query_for_the_others() -> None:
    async def scenario() -> None:
        shared: Coalescer[int] = Coalescer()
        source = Source()
        leaving = asyncio.ensure_future(shared.run("k", source.fetch))
        await settle()
        staying = asyncio.ensure_future(shared.run("k", source.fetch))
        leaving_too = asyncio.ensure_future(shared.run("k", source.fetch))
        await settle()
        leaving.cancel()
        leaving_too.cancel()
        await settle()
        source.release.set()
        assert await staying == 1
        assert leaving.cancelled()
        assert source.started == [0, 1]

    asyncio.run(scenario())


def test_an_error_reaches_every_reader_of_its_batch_and_the_next_batch_runs_afresh() -> None:
    async def scenario() -> None:
        shared: Coalescer[int] = Coalescer()
        calls = 0

        async def failing() -> int:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.01)
            raise LookupError("the database said no")

        readers = [asyncio.ensure_future(shared.run("k", failing)) for _ in range(5)]
        outcomes = await asyncio.gather(*readers, return_exceptions=True)
        assert all(isinstance(outcome, LookupError) for outcome in outcomes)
        assert calls == 2  # the first reader's query, then one for the four that came after

        async def working() -> int:
            return 7

        assert await shared.run("k", working) == 7

    asyncio.run(scenario())


def test_readers_arriving_in_waves_never_run_more_than_one_query_at_a_time() -> None:
    async def scenario() -> None:
        shared: Coalescer[int] = Coalescer()
        running = peak = 0

        async def fetch() -> int:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.005)
            running -= 1
            return 0

        async def reader(delay: float) -> int:
            await asyncio.sleep(delay)
            return await shared.run("k", fetch)

        await asyncio.gather(*(reader(n * 0.001) for n in range(100)))
        assert peak == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("readers", [1, 2, 50])
def test_every_reader_gets_an_answer(readers: int) -> None:
    async def scenario() -> list[int]:
        shared: Coalescer[int] = Coalescer()

        async def fetch() -> int:
            await asyncio.sleep(0)
            return 42

        return await asyncio.gather(*(shared.run("k", fetch) for _ in range(readers)))

    assert asyncio.run(scenario()) == [42] * readers


class Answer:
    """An answer that can be watched for being freed (a list of megabytes, in the service)."""


def test_an_answer_is_freed_once_its_readers_are_done_while_the_next_query_runs() -> None:
    """The next batch (and its readers) must not keep the previous batch's answer alive: lists
    take their bytes from a budget until freed, and the next query waits for that budget."""

    async def scenario() -> None:
        shared: Coalescer[Answer] = Coalescer()
        release_first, release_second = asyncio.Event(), asyncio.Event()
        seen: list[weakref.ref[Answer]] = []

        async def fetch(release: asyncio.Event) -> Answer:
            await release.wait()
            answer = Answer()
            seen.append(weakref.ref(answer))
            return answer

        async def read(release: asyncio.Event) -> None:
            answer = await shared.run("k", lambda: fetch(release))
            assert isinstance(answer, Answer)  # sent, then let go of

        first = asyncio.ensure_future(read(release_first))
        await settle()
        second = asyncio.ensure_future(read(release_second))
        await settle()
        release_first.set()
        await first
        await settle()

        assert not second.done()  # the second query still runs
        assert seen[0]() is None
        release_second.set()
        await second

    asyncio.run(scenario())
