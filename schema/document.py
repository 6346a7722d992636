"""Every document is bounded before work is spent on it: its size in bytes before parsing, its
tokens while parsing, then its depth, aliases, cost, repeated fields and fragments
(`schema.limits`) before the specification's validation rules. Parsing and validation are
cached per document, with rules built once, so a known document costs neither again.

Every error leaves with an `extensions.code` (listed in the README), and unexpected ones are
masked as `INTERNAL_SERVER_ERROR`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache

from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse, specified_rules, validate
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from app.errors import DomainError
from app.services.operations import document_hash
from schema.limits import DocumentLimits, measure_document
from schema.operations import PreparedDocument


class Code:
    """The `extensions.code` of errors that do not come from a service's DomainError."""

    DOCUMENT_TOO_LARGE = "DOCUMENT_TOO_LARGE"
    TOKEN_LIMIT_EXCEEDED = "TOKEN_LIMIT_EXCEEDED"  # noqa: S105 (an error code)
    PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    BAD_REQUEST = "BAD_REQUEST"  # not a GraphQL request (schema.http, schema.persisted)
    INTERNAL = "INTERNAL_SERVER_ERROR"


UNEXPECTED_ERROR_MESSAGE = "Unexpected error."


def coded(error: GraphQLError, code: str) -> GraphQLError:
    """`error` with `code` in its extensions (a copy; graphql-core's errors are shared)."""
    return GraphQLError(
        error.message,
        error.nodes,
        error.source,
        error.positions,
        error.path,
        error.original_error,
        {**(error.extensions or {}), "code": code},
    )


@dataclass(frozen=True, slots=True)
class DocumentRules:
    limits: DocumentLimits
    max_bytes: int
    max_tokens: int
    production: bool


class DocumentPipeline:
    """Parse and validate with caches shared by every request to one schema."""

    def __init__(self, schema: GraphQLSchema, rules: DocumentRules, cache_size: int) -> None:
        self.rules = rules
        specification: list[type[ASTValidationRule]] = [
            *specified_rules,
            MaybeNullValidationRule,
            OneOfInputValidationRule,
        ]
        if rules.production:
            specification.append(NoSchemaIntrospectionCustomRule)
        self._specification = tuple(specification)
        self._schema = schema
        self.parse: Callable[[str], DocumentNode] = lru_cache(maxsize=cache_size)(self._parse)
        self.validate: Callable[[DocumentNode], list[GraphQLError]] = lru_cache(maxsize=cache_size)(
            self._validate
        )
        self._prepare: Callable[[str], PreparedDocument] = lru_cache(maxsize=cache_size)(
            self._prepare_uncached
        )

    def prepare(self, query: str) -> PreparedDocument:
        """The document of `query`, parsed and validated (cached: a known document costs
        neither again). Over the byte or token limit, or unparsable: `errors` says so and
        `document` is None. A text over the byte limit is refused before the cache: no cache
        keeps it (the request body may be far larger than any document)."""
        too_large = self.oversized(query)
        if too_large is not None:
            return PreparedDocument(query, document_hash(query), None, [too_large])
        return self._prepare(query)

    def oversized(self, query: str) -> GraphQLError | None:
        """DOCUMENT_TOO_LARGE when `query` is over the byte limit (checked before anything
        else is done with it, and never cached); None when it is within."""
        limit = self.rules.max_bytes
        # Characters first: cheap, and a string of more characters than bytes allowed is over.
        if len(query) > limit or len(query.encode()) > limit:
            return GraphQLError(
                f"The document is larger than {limit} bytes.",
                extensions={"code": Code.DOCUMENT_TOO_LARGE},
            )
        return None

    def parse_document(self, query: str) -> DocumentNode:
        """The parsed document of `query` (within the byte limit; cached), or the parse error
        with its code: TOKEN_LIMIT_EXCEEDED when parsing stopped at the token limit,
        GRAPHQL_PARSE_FAILED otherwise. A failed parse is not cached."""
        try:
            return self.parse(query)
        except GraphQLError as error:
            too_many = error.message.startswith("Syntax Error: Document contains more than")
            raise coded(
                error, Code.TOKEN_LIMIT_EXCEEDED if too_many else Code.PARSE_FAILED
            ) from None

    def _prepare_uncached(self, query: str) -> PreparedDocument:
        sha256 = document_hash(query)
        try:
            document = self.parse_document(query)
        except GraphQLError as error:
            return PreparedDocument(query, sha256, None, [error])
        return PreparedDocument(query, sha256, document, self.validate(document))

    def _parse(self, query: str) -> DocumentNode:
        return parse(query, max_tokens=self.rules.max_tokens)

    def _validate(self, document: DocumentNode) -> list[GraphQLError]:
        # Our limits first: when they fail, the specification's rules (some of which are
        # quadratic in repeated fields) never see the document.
        errors = measure_document(self._schema, document, self.rules.limits)
        if errors:
            return errors
        return [
            coded(error, Code.VALIDATION_FAILED)
            for error in validate(
                self._schema,
                document,
                self._specification,
                hide_suggestions=self.rules.production,
            )
        ]


class DocumentGuard(SchemaExtension):
    """Runs the pipeline's parse and validation in strawberry's hooks."""

    def __init__(self, pipeline: DocumentPipeline) -> None:
        super().__init__()
        self._pipeline = pipeline

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query or ""
        too_large = self._pipeline.oversized(query)
        if too_large is not None:
            raise too_large
        if query:
            context.graphql_document = self._pipeline.parse_document(query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        assert context.graphql_document is not None
        context.pre_execution_errors = self._pipeline.validate(context.graphql_document)
        yield


def is_unexpected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, (GraphQLError, DomainError))


def public_error(error: GraphQLError) -> GraphQLError:
    """The error as a client sees it: unexpected ones masked, every one with a code."""
    if is_unexpected(error):
        return GraphQLError(
            UNEXPECTED_ERROR_MESSAGE,
            error.nodes,
            error.source,
            error.positions,
            error.path,
            extensions={"code": Code.INTERNAL},
        )
    if error.extensions and "code" in error.extensions:
        return error
    # Without a path it is about the request (variable values, the operation to run); with
    # one, a field failed in a way no service declared: a fault of ours.
    return coded(error, Code.BAD_USER_INPUT if error.path is None else Code.INTERNAL)
