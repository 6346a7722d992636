from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from tests.live import eventually, live_client, served_in_loop
from tests.support import GraphQLClient


@pytest.fixture(scope="session")
async def live_base(app: Starlette) -> AsyncIterator[str]:
    async with served_in_loop(app) as base:
        yield base


async def test_smoke(app: Starlette, live_base: str, gql: GraphQLClient) -> None:
    alice = await gql.sign_up("alice")
    hub = app.state.services.pubsub.hub
    async with live_client(live_base) as client:
        ack = await client.init(alice.access_token)
        print(ack)
        await client.subscribe("1", "subscription { publicTimeline { cursor node { id text author { username } } } }")
        async def ready() -> bool:
            return "public" in hub.channels
        await eventually(ready)
        await gql('mutation { createPost(input: {text: "hello #x"}) { __typename } }', token=alice.access_token)
        print(await client.next_data("1"))
