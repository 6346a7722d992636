"""Per-request DataLoaders, named <thing>_by_<key>; made fresh for every request, so what they
cache is what this viewer may see now."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from strawberry.dataloader import DataLoader

from app.errors import DomainError, ErrorCode
from app.ids import parse_id
from app.models import User
from app.services import Services
from app.services.graph import FollowState
from app.services.media_reads import MediaView
from app.services.views import PostView

T = TypeVar("T")


class Loaders:
    def __init__(self, services: Services, viewer_id: int | None) -> None:
        async def load_users(ids: list[int]) -> list[User | None]:
            found = await services.accounts.users_by_ids(viewer_id, ids)
            return [found.get(user_id) for user_id in ids]

        async def load_posts(ids: list[int]) -> list[PostView | None]:
            found = await services.posts.posts_with_tombstones(viewer_id, ids)
            return [found.get(post_id) for post_id in ids]

        async def load_follow_states(ids: list[int]) -> list[FollowState]:
            if viewer_id is None:
                return [FollowState.NOT_FOLLOWING for _ in ids]
            states = await services.graph.states(viewer_id, ids)
            return [states.get(user_id, FollowState.NOT_FOLLOWING) for user_id in ids]

        async def load_viewer_states(ids: list[int]) -> list[tuple[bool, bool, bool]]:
            if viewer_id is None:
                return [(False, False, False) for _ in ids]
            states = await services.posts.viewer_states_of(viewer_id, ids)
            return [states[post_id] for post_id in ids]

        async def load_post_media(ids: list[int]) -> list[list[MediaView]]:
            found = await services.media.media_of_posts(ids)
            return [found[post_id] for post_id in ids]

        async def load_profile_media(ids: list[int]) -> list[tuple[MediaView | None, ...]]:
            found = await services.media.profile_media_of(ids)
            return [found[user_id] for user_id in ids]

        async def load_premium(ids: list[int]) -> list[bool]:
            premium = await services.billing.premium_among(ids)
            return [user_id in premium for user_id in ids]

        # Premium badges of every account on a page: one statement.
        self.premium_by_user_id: DataLoader[int, bool] = DataLoader(load_premium)
        # Only for posts loaded through the visibility rule: their media go with them.
        self.media_by_post_id: DataLoader[int, list[MediaView]] = DataLoader(load_post_media)
        # (avatar, header) of each account.
        self.profile_media_by_user_id: DataLoader[int, tuple[MediaView | None, ...]] = DataLoader(
            load_profile_media
        )
        self.user_by_id: DataLoader[int, User | None] = DataLoader(load_users)
        self.viewer_state_by_post_id: DataLoader[int, tuple[bool, bool, bool]] = DataLoader(
            load_viewer_states
        )
        self.post_by_id: DataLoader[int, PostView | None] = DataLoader(load_posts)
        self.follow_state_by_user_id: DataLoader[int, FollowState] = DataLoader(load_follow_states)


async def load_nodes(
    loader: DataLoader[int, T | None], node_ids: Iterable[str], *, required: bool
) -> list[T | None]:
    """Load by global-ID node ids, for Relay's `resolve_nodes`: one that is not a valid id is
    simply not found; with `required`, one not found is NOT_FOUND."""
    ids = [parse_id(node_id) for node_id in node_ids]
    found = await loader.load_many([i for i in ids if i is not None])
    by_id = dict(zip([i for i in ids if i is not None], found, strict=True))
    nodes = [by_id.get(i) if i is not None else None for i in ids]
    if required and None in nodes:
        raise DomainError(ErrorCode.NOT_FOUND, "No such object.")
    return nodes
