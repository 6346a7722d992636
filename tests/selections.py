"""Generated GraphQL documents for the differential tests (tests/integration/
test_executor_differential.py, test_row_plans.py): a small data set with every kind of post
(`make_world`), and selections over the timeline types drawn with hypothesis (`Builder`,
`documents`), with the settings those tests run them under (`GENERATED`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from graphql import (
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
)
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from tests.authz import delete_post, edit_post, lock, set_access
from tests.media import post_with_media, ready_media
from tests.social import act, follow, post
from tests.support import Account, GraphQLClient

# --- the data set ----------------------------------------------------------------------------


@dataclass(repr=False)
class World:
    accounts: dict[str, Account]
    post_ids: list[str]
    user_ids: list[str]
    cursors: list[str]
    # A viewer per example: the author, a subscriber, a follower of the locked account, an
    # outsider, or signed out (None).
    viewers: list[str | None] = field(default_factory=lambda: ["ana", "cyd", "dee", "ben", None])

    def __repr__(self) -> str:
        return "World()"  # hypothesis prints the strategy's arguments


async def make_world(http: httpx.AsyncClient, gql: GraphQLClient, app: Starlette) -> World:
    """ana writes a post with a mention, a hashtag and a link (then edits it), one for
    subscribers only, one with an image, and one she deletes after cy replied to it; cy
    replies, quotes, reposts, likes and bookmarks, and has premium access; ben's account is
    locked, with dee following it; dee follows ana and likes her image post."""
    accounts = {name: await gql.sign_up(name) for name in ("ana", "ben", "cyd", "dee")}
    ana, ben, cy, dee = (accounts[n] for n in ("ana", "ben", "cyd", "dee"))
    for follower, followee in ((cy, ana), (dee, ana), (dee, ben), (ana, ben)):
        assert await follow(gql, follower, followee) == "FOLLOWING"
    await lock(gql, ben)
    await set_access("cyd", "active")
    first = await post(gql, ana, "hello #tag @ben https://example.org/x")
    assert (await edit_post(gql, ana, first["id"], "hello again #tag @ben"))["__typename"] == (
        "EditPostSuccess"
    )
    members = await post(gql, ana, "members only #tag", visibility="SUBSCRIBERS")
    image = await ready_media(http, gql, app, ana)
    with_image = await post_with_media(gql, ana, [image["id"]])
    assert with_image["__typename"] == "CreatePostSuccess", with_image
    reply = await post(gql, cy, "a reply #tag", replyTo=first["id"])
    quote = await post(gql, cy, "a quote", quoteOf=first["id"])
    locked = await post(gql, ben, "from behind the lock", visibility="FOLLOWERS")
    # Last, so that the first page of a timeline holds them: a reply to a tombstone and a
    # quote of one.
    doomed = await post(gql, ana, "soon gone")
    orphan = await post(gql, cy, "a reply to what will be gone", replyTo=doomed["id"])
    quoted = await post(gql, dee, "quoting what will be gone", quoteOf=doomed["id"])
    assert (await delete_post(gql, ana, doomed["id"]))["__typename"] == "DeletePostSuccess"
    for verb, viewer, target in (
        ("repostPost", cy, first),
        ("likePost", cy, first),
        ("bookmarkPost", cy, members),
        ("likePost", dee, with_image["post"]),
        ("repostPost", dee, locked),
    ):
        done = await act(gql, verb, viewer, postId=target["id"])
        assert done["__typename"].endswith("Success") or verb == "repostPost", done
    pages = await gql("{ publicTimeline(first: 3) { edges { cursor } } }")
    posts = [first, members, with_image["post"], doomed, orphan, quoted, reply, quote, locked]
    return World(
        accounts,
        post_ids=[p["id"] for p in posts],
        user_ids=[a.id for a in accounts.values()],
        cursors=[e["cursor"] for e in pages["publicTimeline"]["edges"]],
    )


# --- documents ---------------------------------------------------------------------------------

# The roots generated from, and the types selections may reach (the timeline's).
# (The timelines that have posts for most viewers, more often.)
ROOTS = (
    *("publicTimeline", "publicTimeline", "publicTimeline"),
    *("hashtagTimeline", "hashtagTimeline", "homeTimeline", "homeTimeline", "node", "node"),
    *("user", "viewer", "bookmarks", "likedPosts"),
)
TYPES = {
    "Post",
    "User",
    "PostConnection",
    "PostEdge",
    "PageInfo",
    "Media",
    "Entity",
    "PostVersion",
    "UserConnection",
    "UserEdge",
    "FocusPoint",
    "Node",
}
MAX_DEPTH = 4  # object levels below the root
FRAGMENTS = {"Post": "PostBits", "User": "UserBits", "PostConnection": "Page"}
# Types whose selections are now and then all their scalar fields.
WIDE = {"Post", "User", "Media"}
# The way to the posts, taken one time in two.
THROUGH = {"PostConnection": "edges", "PostEdge": "node", "UserConnection": "edges"}


def named_type(type_: Any) -> GraphQLNamedType:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    named: GraphQLNamedType = type_
    return named


def is_leaf(type_: GraphQLNamedType) -> bool:
    return isinstance(type_, GraphQLScalarType | GraphQLEnumType)


@dataclass
class Document:
    query: str
    variables: dict[str, Any]
    viewer: str | None


class Builder:
    """One document: selections drawn over the schema; the variables and fragments they use
    are declared and defined at the end (an unused one would fail validation)."""

    def __init__(self, draw: st.DrawFn, schema: GraphQLSchema, world: World) -> None:
        self.draw = draw
        self.schema = schema
        self.world = world
        self.variables: dict[str, tuple[str, Any]] = {}
        self.fragments: dict[str, str] = {}
        self.defining: set[str] = set()
        # A response name keeps its arguments wherever it appears in one selection set's
        # scope, so that repeated fields merge instead of failing validation.
        self.arguments: dict[tuple[str, str], str] = {}

    def variable(self, prefix: str, type_: str, value: Any) -> str:
        name = f"{prefix}{len(self.variables)}"
        self.variables[name] = (type_, value)
        return f"${name}"

    def value(self, prefix: str, type_: str, strategy: st.SearchStrategy[Any]) -> str:
        """A literal, or a variable holding the value."""
        value = self.draw(strategy)
        if self.draw(st.booleans()):
            return self.variable(prefix, type_, value)
        return "null" if value is None else _literal(value)

    def argument(self, name: str, type_: Any) -> str | None:
        draw = self.draw
        world = self.world
        required = isinstance(type_, GraphQLNonNull)
        if name in ("first", "last"):
            # Mostly `first` alone, small (pages multiply the cost); now and then a size the
            # connection refuses.
            if draw(st.integers(0, 9)) > (8 if name == "first" else 0):
                return None
            sizes = [0, 101, None] if not draw(st.integers(0, 19)) else [1, 2, 3, 1, 2, 5]
            return self.value("n", "Int", st.sampled_from(sizes))
        if name in ("after", "before"):
            if draw(st.integers(0, 11)):
                return None
            return self.value("c", "String", st.sampled_from([*world.cursors, "bogus"]))
        if name == "withReplies":
            return self.value("w", "Boolean!", st.booleans())
        if name == "id":
            ids = [*world.post_ids, *world.user_ids, "UG9zdDox", "nonsense"]
            return self.value("i", "ID!", st.sampled_from(ids))
        if name == "username":
            return self.value("u", "String!", st.sampled_from([*world.accounts, "nobody"]))
        if name == "tag":
            return self.value("t", "String!", st.sampled_from(["tag", "tag", "TAG", "none"]))
        assert not required, name  # `fields` offers no field with another required one
        return None

    def arguments_of(self, parent: str, response_name: str, definition: Any) -> str:
        key = (parent, response_name)
        if key not in self.arguments:
            parts = []
            for name, argument in definition.args.items():
                value = self.argument(name, argument.type)
                if value is not None:
                    parts.append(f"{name}: {value}")
            self.arguments[key] = f"({', '.join(parts)})" if parts else ""
        return self.arguments[key]

    def directive(self) -> str:
        choice = self.draw(st.integers(0, 15))
        if choice > 2:
            return ""
        if choice == 0:
            return " @include(if: " + self.variable("b", "Boolean!", self.draw(st.booleans())) + ")"
        if choice == 1:
            return " @skip(if: " + self.variable("b", "Boolean!", self.draw(st.booleans())) + ")"
        return self.draw(st.sampled_from([" @include(if: true)", " @skip(if: false)"]))

    def fields(self, type_: GraphQLObjectType | GraphQLInterfaceType, depth: int) -> list[str]:
        return [
            name
            for name, definition in type_.fields.items()
            if (
                is_leaf(named_type(definition.type))
                or (named_type(definition.type).name in TYPES and depth < MAX_DEPTH)
            )
            and all(
                not isinstance(a.type, GraphQLNonNull)
                or n in ("withReplies", "id", "username", "tag")
                for n, a in definition.args.items()
            )
        ]

    def selection(self, type_: GraphQLNamedType, depth: int) -> str:
        draw = self.draw
        items: list[str] = []
        if isinstance(type_, GraphQLObjectType) and type_.name in WIDE and draw(st.booleans()):
            # As clients ask: every scalar field (in any order), then a few more things.
            leaves = [n for n, f in type_.fields.items() if is_leaf(named_type(f.type))]
            items += [self.field(type_, depth, n) for n in draw(st.permutations(leaves))]
        for _ in range(draw(st.integers(1, 4 if type_.name in WIDE else 2))):
            kind = draw(st.sampled_from(["field"] * 7 + ["typename", "inline", "spread"]))
            if kind == "typename":
                items.append("__typename" + self.directive())
            elif kind == "inline":
                items.append(self.inline(type_, depth))
            elif kind == "spread" and self.spread(type_, depth, items):
                pass
            elif isinstance(type_, GraphQLObjectType | GraphQLInterfaceType) and self.fields(
                type_, depth
            ):
                items.append(self.field(type_, depth))
        if not items:
            items.append("__typename")
        return "{ " + " ".join(items) + " }"

    def field(
        self, type_: GraphQLObjectType | GraphQLInterfaceType, depth: int, name: str = ""
    ) -> str:
        wide = bool(name)
        if not name:
            fields = self.fields(type_, depth)
            through = THROUGH.get(type_.name)
            if through in fields and self.draw(st.booleans()):
                name = through
            else:
                name = self.draw(st.sampled_from(fields))
        definition = type_.fields[name]
        # (Not in a wide selection: the alias limit would refuse most of them.)
        alias = "" if wide else self.draw(st.sampled_from(["", "", "", "", f"{name}A", f"{name}B"]))
        text = (f"{alias}: " if alias else "") + name
        text += self.arguments_of(type_.name, alias or name, definition)
        text += self.directive()
        named = named_type(definition.type)
        if not is_leaf(named):
            text += " " + self.selection(named, depth + 1)
        return text

    def inline(self, type_: GraphQLNamedType, depth: int) -> str:
        if isinstance(type_, GraphQLInterfaceType | GraphQLUnionType):
            possible = [t for t in self.schema.get_possible_types(type_) if t.name in TYPES]
            target: GraphQLNamedType = self.draw(st.sampled_from(possible))
        else:
            target = type_
        condition = f"on {target.name} " if self.draw(st.booleans()) or target is not type_ else ""
        return f"... {condition}{self.directive().strip()} {self.selection(target, depth)}"

    def spread(self, type_: GraphQLNamedType, depth: int, items: list[str]) -> bool:
        targets = [type_.name] if type_.name in FRAGMENTS else []
        if isinstance(type_, GraphQLInterfaceType):
            targets = [t.name for t in self.schema.get_possible_types(type_) if t.name in FRAGMENTS]
        targets = [t for t in targets if FRAGMENTS[t] not in self.defining]
        if not targets:
            return False
        target = self.draw(st.sampled_from(targets))
        name = FRAGMENTS[target]
        if name not in self.fragments:
            self.defining.add(name)
            body = self.selection(self.schema.type_map[target], depth)
            self.defining.discard(name)
            self.fragments[name] = f"fragment {name} on {target} {body}"
        items.append(f"...{name}{self.directive()}")
        return True

    def document(self) -> str:
        query = self.schema.query_type
        assert query is not None
        roots = self.draw(st.lists(st.sampled_from(ROOTS), min_size=1, max_size=2))
        roots = list(dict.fromkeys(roots))
        selections = []
        for root in roots:
            definition = query.fields[root]
            text = root + self.arguments_of("Query", root, definition) + self.directive()
            selections.append(text + " " + self.selection(named_type(definition.type), 1))
        declared = ", ".join(f"${n}: {t}" for n, (t, _) in self.variables.items())
        head = f"query({declared}) " if declared else ""
        return "\n".join([head + "{ " + "\n  ".join(selections) + " }", *self.fragments.values()])


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


@st.composite
def documents(draw: st.DrawFn, schema: GraphQLSchema, world: World) -> Document:
    builder = Builder(draw, schema, world)
    query = builder.document()
    variables = {name: value for name, (_, value) in builder.variables.items()}
    return Document(query, variables, draw(st.sampled_from(world.viewers)))


GENERATED = settings(
    max_examples=150,
    phases=[Phase.generate, Phase.shrink],
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
