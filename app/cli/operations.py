"""Registered operations (trusted documents): operations register, list, remove.

`register` reads what client build tools extract: Apollo's persisted query manifest
(`generate-persisted-query-manifest`), the `{"<sha256>": "<document>"}` map of Relay and
GraphQL Code Generator's client preset, and plain `.graphql` files (one document each, the
file's exact text). Every document is checked against the schema and the limits before
anything is written, and all are written in one transaction, or none."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from app.cli.common import _database, _run, _settings, cli

T = TypeVar("T")

if TYPE_CHECKING:
    from app.services.operations import NewOperation
    from app.settings import Settings

operations_cli = typer.Typer(
    help="The operations clients may run when trusted documents are on (graphql.trusted_documents)."
)
cli.add_typer(operations_cli, name="operations")

APOLLO_FORMAT = "apollo-persisted-query-manifest"
GRAPHQL_SUFFIXES = (".graphql", ".gql")
# Ids of other hashes, by length: Relay's persisted queries are MD5 unless configured.
_OTHER_HASHES = {
    32: " (an MD5? Relay: set persistConfig's algorithm to SHA256)",
    40: " (a SHA-1? GraphQL Code Generator: set persistedDocuments.hashAlgorithm to sha256)",
}


@dataclass(frozen=True, slots=True)
class ManifestOperation:
    """One document a manifest lists: where it came from, and how to name it in a message."""

    source: str
    label: str
    sha256: str
    body: str


def read_manifest(path: Path) -> tuple[list[ManifestOperation], list[str]]:
    """The operations in one file, and what is wrong with it (each problem names the file, and
    the operation when it is about one)."""
    from app.services.operations import document_hash

    source = str(path)
    try:
        text = path.read_bytes().decode()
    except OSError as exc:
        return [], [f"{source}: cannot read it ({exc.strerror})"]
    except UnicodeDecodeError:
        return [], [f"{source}: not UTF-8 text"]
    if path.suffix.lower() in GRAPHQL_SUFFIXES:
        if not text.strip():
            return [], [f"{source}: no operations in it"]
        # The file's exact text: what a client that sends this file sends, byte for byte.
        return [ManifestOperation(source, path.name, document_hash(text), text)], []
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        return [], [f"{source}: not JSON ({exc.msg} at line {exc.lineno})"]
    if isinstance(data, dict) and "format" in data:
        return _apollo_manifest(source, data)
    if isinstance(data, dict):
        return _hash_map(source, data)
    return [], [
        f"{source}: not a manifest this reads: an Apollo persisted query manifest, a "
        '{"<sha256>": "<document>"} map, or a .graphql file'
    ]


def _apollo_manifest(
    source: str, data: dict[str, Any]
) -> tuple[list[ManifestOperation], list[str]]:

    if data.get("format") != APOLLO_FORMAT:
        return [], [f"{source}: unknown manifest format {data.get('format')!r}"]
    if data.get("version") != 1 or isinstance(data.get("version"), bool):
        return [], [f"{source}: Apollo manifest version {data.get('version')!r} (this reads 1)"]
    entries = data.get("operations")
    if not isinstance(entries, list) or not entries:
        return [], [f"{source}: no operations in it"]
    operations: list[ManifestOperation] = []
    problems: list[str] = []
    for number, entry in enumerate(entries, start=1):
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and isinstance(entry.get("body"), str)
        ):
            problems.append(f"{source}: operation #{number}: needs a string id and body")
            continue
        name = entry.get("name")
        label = name if isinstance(name, str) and name else f"#{number}"
        named = _named(source, label, entry["id"], entry["body"], f"id {entry['id']!r}", "its body")
        if isinstance(named, str):
            problems.append(named)
        else:
            operations.append(named)
    return operations, problems


def _hash_map(source: str, data: dict[str, Any]) -> tuple[list[ManifestOperation], list[str]]:
    if not data:
        return [], [f"{source}: no operations in it"]
    operations: list[ManifestOperation] = []
    problems: list[str] = []
    for key, body in data.items():
        if not isinstance(body, str):
            problems.append(f"{source}: operation {key}: the document must be a string")
            continue
        named = _named(
            source, key, key, body, "the key", "the document", _OTHER_HASHES.get(len(key), "")
        )
        if isinstance(named, str):
            problems.append(named)
        else:
            operations.append(named)
    return operations, problems


def _named(
    source: str, label: str, given: str, body: str, what: str, noun: str, hint: str = ""
) -> ManifestOperation | str:
    """The operation a manifest names by `given`, or the problem with it. Clients send the
    SHA-256 of the document: an id that is not it could never be asked for, and must not
    stand for another document."""
    from app.services.operations import document_hash, hash_of_id

    sha256, actual = hash_of_id(given), document_hash(body)
    if sha256 != actual:
        return f"{source}: operation {label}: {what} is not the SHA-256 of {noun} ({actual}){hint}"
    return ManifestOperation(source, label, actual, body)


def collect_operations(
    settings: Settings, files: Sequence[Path]
) -> tuple[list[NewOperation], list[str]]:
    """The operations in `files` (each document once), and every problem with them: files that
    are not manifests, ids that are not SHA-256s, documents that do not parse, are over a
    limit or do not fit the schema (checked as a process with `settings` serves)."""
    from app.main import check_documents
    from app.services.operations import NewOperation

    found: dict[str, ManifestOperation] = {}
    problems: list[str] = []
    for path in files:
        operations, wrong = read_manifest(path)
        problems.extend(wrong)
        for operation in operations:
            found.setdefault(operation.sha256, operation)
    checks = check_documents(settings, [operation.body for operation in found.values()])
    for operation, check in zip(found.values(), checks, strict=True):
        name = ", ".join(check.operation_names) or operation.label
        problems.extend(
            f"{operation.source}: operation {name}: {problem}" for problem in check.problems
        )
    return [
        NewOperation(operation.body, check.operation_names)
        for operation, check in zip(found.values(), checks, strict=True)
    ], problems


@operations_cli.command("register")
def register(
    files: Annotated[
        list[Path],
        typer.Argument(
            help="Apollo persisted query manifests, {hash: document} maps (Relay, GraphQL Code "
            "Generator) or .graphql files.",
            show_default=False,
        ),
    ],
) -> None:
    """Register every operation in FILES (checked against the schema and the limits first; all
    or none). Registering an operation again changes nothing."""
    from app.services.operations import OperationService

    settings = _settings()
    operations, problems = collect_operations(settings, files)
    if problems:
        for problem in problems:
            typer.echo(f"holdfast: {problem}", err=True)
        typer.echo("holdfast: nothing registered", err=True)
        raise typer.Exit(2)

    async def write() -> int:
        async with _database(settings, role=None):
            return await OperationService().register(operations)

    new = _on_operations(write)
    typer.echo(
        f"{_operations(len(operations))}: {new} registered, {len(operations) - new} already "
        f"registered (serving processes see them within "
        f"{settings.graphql.registered_refresh_seconds:g} s)"
    )


def _on_operations(action: Callable[[], Awaitable[T]]) -> T:
    """`action` on the registered operations; a database that has no table for them yet (a
    release's registration run before its `holdfast migrate`) is a message, not a traceback,
    and nothing is changed."""
    from tortoise.exceptions import OperationalError

    try:
        return _run(action)
    except OperationalError as exc:
        if "persisted_operations" not in str(exc):
            raise
        typer.echo(
            "holdfast: this database has no registered operations table yet: run "
            "`holdfast migrate` first (nothing changed)",
            err=True,
        )
        raise typer.Exit(2) from None


def _operations(count: int) -> str:
    return f"{count} operation{'' if count == 1 else 's'}"


@operations_cli.command("list")
def list_operations() -> None:
    """The registered operations: hash, when registered, operation names."""
    from app.services.operations import OperationService

    settings = _settings()

    async def read() -> list[str]:
        async with _database(settings, role=None):
            return [
                f"{operation.sha256}  {operation.registered_at:%Y-%m-%d %H:%M:%S}  "
                f"{', '.join(operation.operation_names) or '(anonymous)'}"
                for operation in await OperationService().registered()
            ]

    lines = _on_operations(read)
    typer.echo("\n".join(lines) if lines else "no operations registered")


@operations_cli.command("remove")
def remove(
    hashes: Annotated[
        list[str],
        typer.Argument(
            help="SHA-256 hashes as `list` shows them (or sha256:<hex>).", show_default=False
        ),
    ],
) -> None:
    """Remove registered operations (all of HASHES, or none when one is not registered)."""
    from app.errors import DomainError
    from app.services.operations import OperationService, hash_of_id

    settings = _settings()
    ids = {value: hash_of_id(value) for value in hashes}
    bad = [value for value, sha256 in ids.items() if sha256 is None]
    if bad:
        typer.echo(f"holdfast: not a SHA-256 in hex: {', '.join(bad)}", err=True)
        raise typer.Exit(2)
    wanted = [sha256 for sha256 in ids.values() if sha256 is not None]

    async def delete() -> int:
        async with _database(settings, role=None):
            return await OperationService().remove(wanted)

    try:
        removed = _on_operations(delete)
    except DomainError as exc:
        typer.echo(f"holdfast: {exc.message} Nothing removed.", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{_operations(removed)} removed (serving processes refuse them within "
        f"{settings.graphql.registered_refresh_seconds:g} s)"
    )
