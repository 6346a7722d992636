"""`holdfast operations register` reads what client build tools extract: Apollo's persisted
query manifest, the {hash: document} map of Relay and GraphQL Code Generator, and .graphql
files; an id that is not the document's SHA-256, and a file it cannot read, are problems that
name the file and the operation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from app.cli.operations import read_manifest

VIEWER = "query Viewer { viewer { id } }"
TIMELINE = "query Timeline { publicTimeline(first: 5) { edges { node { id } } } }"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_an_apollo_manifest_gives_its_operations(tmp_path: Path) -> None:
    manifest = write(
        tmp_path / "persisted-query-manifest.json",
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [
                {"id": sha256(VIEWER), "name": "Viewer", "type": "query", "body": VIEWER},
                {"id": sha256(TIMELINE), "name": "Timeline", "type": "query", "body": TIMELINE},
            ],
        },
    )

    operations, problems = read_manifest(manifest)

    assert problems == []
    assert [(o.label, o.sha256, o.body) for o in operations] == [
        ("Viewer", sha256(VIEWER), VIEWER),
        ("Timeline", sha256(TIMELINE), TIMELINE),
    ]


def test_a_hash_map_gives_its_operations_with_or_without_the_sha256_prefix(
    tmp_path: Path,
) -> None:
    manifest = write(
        tmp_path / "persisted-documents.json",
        {sha256(VIEWER): VIEWER, f"sha256:{sha256(TIMELINE)}": TIMELINE},
    )

    operations, problems = read_manifest(manifest)

    assert problems == []
    assert {o.sha256: o.body for o in operations} == {
        sha256(VIEWER): VIEWER,
        sha256(TIMELINE): TIMELINE,
    }


def test_a_graphql_file_is_one_document_hashed_as_written(tmp_path: Path) -> None:
    text = "query Viewer {\n  viewer { id }\n}\n"
    (tmp_path / "viewer.graphql").write_text(text)

    operations, problems = read_manifest(tmp_path / "viewer.graphql")

    assert problems == []
    assert [(o.sha256, o.body) for o in operations] == [(sha256(text), text)]


def test_ids_that_are_not_the_documents_sha256_are_refused_by_name(tmp_path: Path) -> None:
    md5 = hashlib.md5(VIEWER.encode()).hexdigest()  # noqa: S324 (Relay's default id)
    relay = write(tmp_path / "relay.json", {md5: VIEWER, sha256(VIEWER): VIEWER})
    apollo = write(
        tmp_path / "apollo.json",
        {
            "format": "apollo-persisted-query-manifest",
            "version": 1,
            "operations": [{"id": sha256(TIMELINE), "name": "Viewer", "body": VIEWER}],
        },
    )

    relay_operations, relay_problems = read_manifest(relay)
    apollo_operations, apollo_problems = read_manifest(apollo)

    assert [o.sha256 for o in relay_operations] == [sha256(VIEWER)]
    assert relay_problems == [
        f"{relay}: operation {md5}: the key is not the SHA-256 of the document "
        f"({sha256(VIEWER)}) (an MD5? Relay: set persistConfig's algorithm to SHA256)"
    ]
    assert apollo_operations == []
    assert apollo_problems == [
        f"{apollo}: operation Viewer: id '{sha256(TIMELINE)}' is not the SHA-256 of its body "
        f"({sha256(VIEWER)})"
    ]


def test_files_that_are_not_manifests_are_named(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"a": ')
    (tmp_path / "latin1.json").write_bytes(b'{"\xe9": 1}')
    (tmp_path / "empty.graphql").write_text("\n")
    cases = {
        "broken.json": "not JSON (Expecting value at line 1)",
        "latin1.json": "not UTF-8 text",
        "missing.json": "cannot read it (No such file or directory)",
        "empty.graphql": "no operations in it",
        "list.json": "not a manifest this reads",
        "other.json": "unknown manifest format 'relay'",
        "v2.json": "Apollo manifest version 2 (this reads 1)",
        "vtrue.json": "Apollo manifest version True (this reads 1)",
        "no-body.json": "operation #1: needs a string id and body",
        "number.json": "operation x: the document must be a string",
        "nothing.json": "no operations in it",
    }
    write(tmp_path / "list.json", [VIEWER])
    write(tmp_path / "other.json", {"format": "relay", "operations": []})
    write(tmp_path / "v2.json", {"format": "apollo-persisted-query-manifest", "version": 2})
    write(tmp_path / "vtrue.json", {"format": "apollo-persisted-query-manifest", "version": True})
    write(
        tmp_path / "no-body.json",
        {"format": "apollo-persisted-query-manifest", "version": 1, "operations": [{"id": "x"}]},
    )
    write(tmp_path / "number.json", {"x": 5})
    write(tmp_path / "nothing.json", {})

    found = {name: read_manifest(tmp_path / name) for name in cases}

    for name, expected in cases.items():
        operations, problems = found[name]
        assert operations == [], name
        assert len(problems) == 1, (name, problems)
        assert problems[0].startswith(f"{tmp_path / name}: {expected}"), (name, problems)
