"""The GraphQL schema: root types, request limits, caches and error masking."""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Annotated, Any

import strawberry
import structlog
from graphql import GraphQLError
from strawberry import relay
from strawberry.relay.types import GlobalIDValueError
from strawberry.types import ExecutionContext, ExecutionResult, Info
from strawberry.types.base import StrawberryObjectDefinition
from strawberry.types.execution import PreExecutionError

from app.settings import Settings
from schema.accounts import AccountMutation, AccountQuery
from schema.billing import BillingMutation, BillingQuery
from schema.context import Context
from schema.document import (
    DocumentGuard,
    DocumentPipeline,
    DocumentRules,
    is_unexpected,
    public_error,
)
from schema.executor import execution_context_class
from schema.limits import DocumentLimits
from schema.media import MediaMutation, MediaQuery
from schema.posts.mutations import PostMutation
from schema.posts.types import MEDIA_LIST_SIZE, Post
from schema.results import parse_global_id
from schema.social import SocialMutation
from schema.subscriptions import Subscription
from schema.timelines import TimelineQuery

log = structlog.get_logger("holdfast.graphql")


@strawberry.type(description="Reads.")
class Query(AccountQuery, TimelineQuery, MediaQuery, BillingQuery):
    @strawberry.field(
        description="The object with this global ID, or null if the viewer may not see it."
    )
    async def node(
        self,
        info: Info[Context, None],
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")],
    ) -> relay.Node | None:
        # Parsed here rather than as a GlobalID argument, so that a malformed id, or one that
        # names an interface or a type that is not a Node, is simply nothing.
        global_id = parse_global_id(id)
        if global_id is None:
            return None
        try:
            node_type = global_id.resolve_type(info)
        except GlobalIDValueError:
            return None
        definition = info.schema.get_type_by_name(global_id.type_name)
        if not isinstance(definition, StrawberryObjectDefinition) or definition.is_interface:
            return None
        resolved = node_type.resolve_node(global_id.node_id, info=info, required=False)
        return await resolved if inspect.isawaitable(resolved) else resolved


@strawberry.type(description="Writes. Each takes one input and returns a result union.")
class Mutation(AccountMutation, PostMutation, SocialMutation, MediaMutation, BillingMutation):
    pass


class HoldfastSchema(strawberry.Schema):
    pipeline: DocumentPipeline  # set by build_schema
    guard: Callable[[], DocumentGuard]  # the extension factory build_schema installs

    async def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        # Every way out passes here, including errors strawberry catches around the whole
        # operation (which no extension sees): mask and code them once, at the end.
        result = await super().execute(*args, **kwargs)
        if result.errors:
            result.errors = [public_error(error) for error in result.errors]
        return result

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        """What both WebSocket protocols run every operation with: each operation on a
        connection gets its own copy of the connection's context, and every result is
        masked and coded as `execute` does it."""
        context = kwargs.get("context_value")
        if isinstance(context, Context):
            kwargs["context_value"] = context.for_operation()
        return self._public_results(await super().stream(*args, **kwargs))

    async def _public_results(self, results: Any) -> AsyncGenerator[Any, None]:
        started = False
        try:
            async with aclosing(results):
                async for result in results:
                    started = True
                    # The result objects are kept: strawberry tells a PreExecutionError by type.
                    errors = getattr(result, "errors", None)
                    if errors:
                        result.errors = [public_error(error) for error in errors]
                    yield result
        except Exception as exc:
            if started:
                raise
            # Raised before execution where `execute` would have made it a result: by the
            # document guard (over a limit, unparsable), or a fault of ours.
            error = (
                exc if isinstance(exc, GraphQLError) else GraphQLError(str(exc), original_error=exc)
            )
            self.process_errors([error])
            yield PreExecutionError(data=None, errors=[public_error(error)])

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if is_unexpected(error):
                original = error.original_error
                log.error(
                    "graphql.unexpected_error",
                    path=error.path,
                    exc_info=(type(original), original, original.__traceback__)
                    if original
                    else None,
                )


def build_schema(settings: Settings) -> HoldfastSchema:
    """Build the schema with its limits. The document pipeline (parse and validation caches,
    rules) is made once here and shared by every request."""
    limits = settings.graphql
    schema = HoldfastSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Post],
        execution_context_class=execution_context_class(
            limits.executor, production=settings.is_production
        ),
    )
    rules = DocumentRules(
        limits=DocumentLimits(
            max_depth=limits.max_depth,
            max_aliases=limits.max_aliases,
            max_cost=limits.max_cost,
            max_repeated_fields=limits.max_repeated_fields,
            max_fragments=limits.max_fragments,
            list_sizes={MEDIA_LIST_SIZE.name: settings.media.max_attachments},
        ),
        max_bytes=limits.max_document_bytes,
        max_tokens=limits.max_tokens,
        production=settings.is_production,
    )
    pipeline = schema.pipeline = DocumentPipeline(schema._schema, rules, limits.cache_size)
    # Extensions are made per request (they hold its execution context); what they share is
    # built above, once.
    schema.guard = lambda: DocumentGuard(pipeline)
    schema.extensions = (schema.guard,)
    return schema
