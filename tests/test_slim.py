"""The single-consumer queue that replaces asyncio.Queue per connection (server/protocol/queues.py).

python-engineio and uvicorn drive it in every other test; these pin down the edges they
rely on: order, the timeout of ``wait_for``, the end-of-stream marker and ``join``.
"""

from __future__ import annotations

import asyncio

import pytest

from swe_realtime.protocol.queues import Flag, SingleConsumerQueue


async def test_items_arrive_in_order_whether_waited_for_or_queued() -> None:
    queue: SingleConsumerQueue[int] = SingleConsumerQueue()
    waiting = queue.get()
    queue.put_nowait(1)  # handed to the waiting consumer
    queue.put_nowait(2)
    await queue.put(3)
    assert queue.qsize() == 2
    assert not queue.empty()
    assert [await waiting, await queue.get(), queue.get_nowait()] == [1, 2, 3]
    assert queue.empty()
    assert queue.qsize() == 0
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()


async def test_a_timed_out_wait_loses_nothing() -> None:
    queue: SingleConsumerQueue[str] = SingleConsumerQueue()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(queue.get(), 0.01)
    queue.put_nowait("after")  # the cancelled getter is skipped
    assert await asyncio.wait_for(queue.get(), 1) == "after"


async def test_none_wakes_the_consumer_as_the_end_of_stream() -> None:
    queue: SingleConsumerQueue[str | None] = SingleConsumerQueue()
    consumer = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)  # one loop turn, not a wait: the consumer is waiting when None comes
    queue.put_nowait(None)
    assert await consumer is None


async def test_join_waits_until_every_item_is_done() -> None:
    queue: SingleConsumerQueue[int] = SingleConsumerQueue()
    await queue.join()  # nothing outstanding: returns at once
    queue.put_nowait(1)
    queue.put_nowait(2)
    joined = asyncio.ensure_future(queue.join())
    await queue.get()
    queue.task_done()
    await asyncio.sleep(0)  # one loop turn, not a wait: what is tested is that join is still not done
    assert not joined.done()
    queue.get_nowait()
    queue.task_done()
    await asyncio.wait_for(joined, 1)


async def test_flag_wakes_every_waiter_and_blocks_when_cleared() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)  # one loop turn, not a wait: the waiters are blocked before the flag is set
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await flag.wait()  # set: returns at once
    flag.clear()
    blocked = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0.01)  # not a wait for something: a window in which the waiter must stay blocked
    assert not blocked.done()
    flag.set()
    await asyncio.wait_for(blocked, 1)
