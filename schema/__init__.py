"""The GraphQL schema: root types, request limits, caches and error masking."""

from __future__ import annotations

import inspect
from typing import Annotated, Any

import strawberry
import structlog
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry import relay
from strawberry.extensions import (
    AddValidationRules,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
    max_aliases,
    query_depth_limiter,
)
from strawberry.relay.types import GlobalIDValueError
from strawberry.types import ExecutionContext, Info

from app.errors import DomainError
from app.settings import Settings
from schema.accounts import AccountMutation, AccountQuery
from schema.context import Context
from schema.executor import FastExecutionContext
from schema.posts import PostMutation
from schema.social import SocialMutation
from schema.timelines import TimelineQuery
from schema.types import Post

log = structlog.get_logger("holdfast.graphql")

UNEXPECTED_ERROR_MESSAGE = "Unexpected error."


@strawberry.type(description="Reads.")
class Query(AccountQuery, TimelineQuery):
    @strawberry.field(
        description="The object with this global ID, or null if the viewer may not see it."
    )
    async def node(
        self,
        info: Info[Context, None],
        id: Annotated[relay.GlobalID, strawberry.argument(description="A global ID.")],
    ) -> relay.Node | None:
        try:
            node_type = id.resolve_type(info)
        except GlobalIDValueError:
            return None
        resolved = node_type.resolve_node(id.node_id, info=info, required=False)
        return await resolved if inspect.isawaitable(resolved) else resolved


@strawberry.type(description="Writes. Each takes one input and returns a result union.")
class Mutation(AccountMutation, PostMutation, SocialMutation):
    pass


def _is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, DomainError))


class HoldfastSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if _is_unexpected(error):
                original = error.original_error
                log.error(
                    "graphql.unexpected_error",
                    path=error.path,
                    exc_info=(type(original), original, original.__traceback__)
                    if original
                    else None,
                )


def build_schema(settings: Settings) -> strawberry.Schema:
    """Build the schema with its limits. Validation rules are made once here, so the validation
    cache (keyed by the rules) hits across requests."""
    limits = settings.graphql
    rules: list[Any] = [
        query_depth_limiter.create_validator(limits.max_depth, None),
        max_aliases.create_validator(limits.max_aliases),
    ]
    if settings.is_production:
        rules.append(NoSchemaIntrospectionCustomRule)
    cache_size = limits.cache_size
    return HoldfastSchema(
        query=Query,
        mutation=Mutation,
        types=[Post],
        execution_context_class=FastExecutionContext,
        extensions=[
            lambda: MaxTokensLimiter(limits.max_tokens),
            lambda: AddValidationRules(rules),
            lambda: ParserCache(maxsize=cache_size),
            lambda: ValidationCache(maxsize=cache_size),
            lambda: MaskErrors(
                should_mask_error=_is_unexpected, error_message=UNEXPECTED_ERROR_MESSAGE
            ),
        ],
    )
