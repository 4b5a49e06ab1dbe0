"""Identical reads asked at once share a render, never one begun before they were asked
(plugbox.host.api.coalesce, ADR 0038). The renders are held open by events, not timed."""

from __future__ import annotations

import asyncio

import pytest

from plugbox.host.api.coalesce import Coalesce


class Renders:
    """A render that counts itself and ends only when the test releases it."""

    def __init__(self) -> None:
        self.count = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.fail: Exception | None = None

    async def __call__(self) -> bytes:
        self.count += 1
        number = self.count
        self.started.set()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return f"render {number}".encode()


async def settle() -> None:
    """Let every ready task run until it waits again."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_requests_waiting_for_the_same_key_share_one_render() -> None:
    async def scenario() -> None:
        shared, render = Coalesce(), Renders()
        crowd = [asyncio.create_task(shared.get("page", render)) for _ in range(20)]
        await render.started.wait()
        render.release.set()
        assert set(await asyncio.gather(*crowd)) == {b"render 1"}
        assert render.count == 1

    asyncio.run(scenario())


def test_a_request_arriving_during_a_render_gets_a_later_one() -> None:
    # The running render began before the request: it may miss a write the client just made.
    async def scenario() -> None:
        shared, render = Coalesce(), Renders()
        first = asyncio.create_task(shared.get("page", render))
        await render.started.wait()
        late = [asyncio.create_task(shared.get("page", render)) for _ in range(5)]
        await settle()
        assert render.count == 1  # the late ones wait for the running render to end
        render.release.set()
        assert await first == b"render 1"
        assert set(await asyncio.gather(*late)) == {b"render 2"}
        assert render.count == 2

    asyncio.run(scenario())


def test_other_keys_render_on_their_own() -> None:
    async def scenario() -> None:
        shared, render = Coalesce(), Renders()
        render.release.set()
        answers = await asyncio.gather(shared.get("a", render), shared.get("b", render))
        assert sorted(answers) == [b"render 1", b"render 2"]

    asyncio.run(scenario())


def test_a_failed_render_fails_every_request_that_shared_it_and_is_not_kept() -> None:
    async def scenario() -> None:
        shared, render = Coalesce(), Renders()
        render.fail = LookupError("no such run")
        crowd = [asyncio.create_task(shared.get("run", render)) for _ in range(3)]
        render.release.set()
        results = await asyncio.gather(*crowd, return_exceptions=True)
        assert all(isinstance(result, LookupError) for result in results)
        render.fail = None
        assert await shared.get("run", render) == b"render 2"

    asyncio.run(scenario())


def test_a_request_that_hangs_up_does_not_cancel_the_render_others_wait_for() -> None:
    async def scenario() -> None:
        shared, render = Coalesce(), Renders()
        leaver = asyncio.create_task(shared.get("page", render))
        stayer = asyncio.create_task(shared.get("page", render))
        await render.started.wait()
        leaver.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leaver
        render.release.set()
        assert await stayer == b"render 1"

    asyncio.run(scenario())
