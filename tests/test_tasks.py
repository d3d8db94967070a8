import logging

import anyio
import pytest

from roomcast._tasks import Supervisor


async def test_a_failing_task_is_logged_and_started_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    supervisor = Supervisor("Test")
    runs: list[int] = []
    done = anyio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise ValueError(f"bad message {len(runs)}")
        done.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(supervisor.run, "listener", flaky)
            await done.wait()
    assert runs == [0, 1, 2]
    assert supervisor.restarts == 2
    assert supervisor.healthy  # its last run succeeded
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failures] == ["Test: the listener failed; restarting it."] * 2
    assert all(r.exc_info and "bad message" in str(r.exc_info[1]) for r in failures)


async def test_a_task_failing_now_makes_it_unhealthy() -> None:
    supervisor = Supervisor("Test")
    failed = anyio.Event()

    async def broken() -> None:
        failed.set()
        raise RuntimeError("always")

    async with anyio.create_task_group() as tg:
        tg.start_soon(supervisor.run, "heartbeat", broken)
        await failed.wait()
        await anyio.wait_all_tasks_blocked()  # in its backoff now
        assert not supervisor.healthy
        assert supervisor.failing == {"heartbeat"}
        tg.cancel_scope.cancel()


async def test_cancellation_is_not_a_failure() -> None:
    supervisor = Supervisor("Test")
    async with anyio.create_task_group() as tg:
        tg.start_soon(supervisor.run, "listener", anyio.sleep_forever)
        await anyio.wait_all_tasks_blocked()
        tg.cancel_scope.cancel()
    assert supervisor.restarts == 0
