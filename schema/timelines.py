"""Timelines, notifications and search over GraphQL: cursor connections, newest first."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from app.auth import AccessClaims
from app.errors import DomainError
from app.services.timelines import REPOSTER
from schema.context import Context
from schema.notifications import NotificationConnection
from schema.paging import After, Before, First, Last, page_request, page_request_of
from schema.posts.types import POST_ROWS, PostConnection
from schema.rowplan import ROW_PAGE, RowPage, Rows
from schema.runner import SESSION_FOLDED
from schema.users import USER_ROWS, User, UserConnection, as_user

Limit = Annotated[int, strawberry.argument(description="At most this many (1-100).")]


@strawberry.type(description="A hashtag and how many public posts use it.")
class Hashtag:
    tag: str = strawberry.field(description="The tag, lower case, without #.")
    public_posts: int = strawberry.field(description="Public posts using it.")


def _folded(context: Context) -> AccessClaims | None:
    """The token's verified claims while the session check is left to the home page's own
    statement (schema.runner SESSION_FOLDED): no viewer signed in yet."""
    return context.claims if context.viewer is None else None


async def _home_rows(
    context: Context, arguments: dict[str, Any], columns: frozenset[str]
) -> Rows | None:
    """The home timeline's page as rows for a page plan (schema.rowplan), read as
    `home_timeline` reads it with the session check folded in; None when the resolver would
    answer otherwise (signed out, a closed session, arguments the page refuses): it runs then."""
    claims = _folded(context)
    if claims is None:
        return None
    try:
        request = page_request_of("home", arguments)
    except DomainError:
        return None
    return await context.services.timelines.home_rows_of_session(claims, request, columns)


# The home timeline's page rows (app.services.timelines HOME_FIELDS): posts with their related
# objects, and the reposter of an entry.
HOME_ROWS = RowPage(
    fetch=_home_rows,
    views={"Post": POST_ROWS, "User": USER_ROWS},
    node="Post",
    edge={"reposted_by": ("User", REPOSTER)},
)


@strawberry.type
class TimelineQuery:
    @strawberry.field(
        description="The viewer's posts and those of accounts they follow.",
        metadata={SESSION_FOLDED: True, ROW_PAGE: HOME_ROWS},
    )
    async def home_timeline(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PostConnection:
        context = info.context
        claims = _folded(context)
        if claims is not None:
            # The session is checked in the page's own statement (schema.runner); the
            # arguments' errors come after NOT_AUTHENTICATED, as they do signed in already.
            try:
                request = page_request("home", first, after, last, before)
            except DomainError:
                await context.sign_in()
                context.require_viewer()
                raise
            context.claims = None
            signed_in = await context.services.timelines.home_of_session(claims, request)
            if signed_in is None:
                context.require_viewer()  # NOT_AUTHENTICATED: the session is not open
            assert signed_in is not None
            context.viewer, page = signed_in
            return PostConnection.from_page(page)
        viewer = context.require_viewer()
        request = page_request("home", first, after, last, before)
        page = await context.services.timelines.home(viewer.user.id, request)
        return PostConnection.from_page(page)

    @strawberry.field(description="Every public post, newest first.")
    async def public_timeline(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PostConnection:
        request = page_request("public", first, after, last, before)
        page = await info.context.services.timelines.public(info.context.viewer_id, request)
        return PostConnection.from_page(page)

    @strawberry.field(description="Posts with a hashtag that the viewer may see.")
    async def hashtag_timeline(
        self,
        info: Info[Context, None],
        tag: Annotated[
            str, strawberry.argument(description="The tag, with or without #; up to 100.")
        ],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PostConnection:
        request = page_request("hashtag", first, after, last, before)
        page = await info.context.services.timelines.hashtag(info.context.viewer_id, tag, request)
        return PostConnection.from_page(page)

    @strawberry.field(description="The viewer's bookmarks, latest first.")
    async def bookmarks(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PostConnection:
        viewer = info.context.require_viewer()
        request = page_request("bookmarks", first, after, last, before)
        page = await info.context.services.timelines.bookmarks(viewer.user.id, request)
        return PostConnection.from_page(page)

    @strawberry.field(description="Posts the viewer liked, latest like first.")
    async def liked_posts(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PostConnection:
        viewer = info.context.require_viewer()
        request = page_request("likes", first, after, last, before)
        page = await info.context.services.timelines.likes(viewer.user.id, request)
        return PostConnection.from_page(page)

    @strawberry.field(description="Accounts asking to follow the viewer.")
    async def follow_requests(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> UserConnection:
        viewer = info.context.require_viewer()
        request = page_request("follow-requests", first, after, last, before)
        return UserConnection.from_page(
            await info.context.services.graph.follow_requests(viewer, request)
        )

    @strawberry.field(description="The viewer's notifications, newest first.")
    async def notifications(
        self,
        info: Info[Context, None],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> NotificationConnection:
        viewer = info.context.require_viewer()
        request = page_request("notifications", first, after, last, before)
        page = await info.context.services.notifications.page(viewer.user, request)
        return NotificationConnection.from_page(page)

    @strawberry.field(description="How many notifications are newer than the read mark.")
    async def unread_notification_count(self, info: Info[Context, None]) -> int:
        viewer = info.context.require_viewer()
        return await info.context.services.notifications.unread_count(viewer.user)

    @strawberry.field(description="Accounts whose username or display name starts so.")
    async def search_accounts(
        self,
        info: Info[Context, None],
        query: Annotated[
            str, strawberry.argument(description="The start of a name; up to 256 characters.")
        ],
        limit: Limit = 20,
    ) -> list[User]:
        found = await info.context.services.search.accounts(info.context.viewer_id, query, limit)
        return [as_user(account) for account in found]

    @strawberry.field(description="Posts matching words, newest first.")
    async def search_posts(
        self,
        info: Info[Context, None],
        query: Annotated[
            str, strawberry.argument(description="Words to find; up to 256 characters.")
        ],
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
    ) -> PostConnection:
        request = page_request("search-posts", first, after, last, before)
        page = await info.context.services.timelines.search_posts(
            info.context.viewer_id, query, request
        )
        return PostConnection.from_page(page)

    @strawberry.field(description="Hashtags starting so, most used first.")
    async def search_hashtags(
        self,
        info: Info[Context, None],
        query: Annotated[
            str, strawberry.argument(description="The start of a tag; up to 256 characters.")
        ],
        limit: Limit = 20,
    ) -> list[Hashtag]:
        found = await info.context.services.search.hashtags(query, limit)
        return [Hashtag(tag=h.tag, public_posts=h.public_posts) for h in found]
