"""Mentions, hashtags and links found in a post's text, with the character ranges clients
need to render them. Ranges are [start, end) in Unicode code points of the text."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

HASHTAG_MAX = 100  # characters of a tag, without the #

_MENTION = re.compile(r"(?<![\w@/])@([A-Za-z0-9_]{3,30})(?![\w@])")
_HASHTAG = re.compile(rf"(?<![\w#&/])#(\w{{1,{HASHTAG_MAX}}})(?!\w)")
_LINK = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_TRAILING = ".,;:!?)]}'\""


@dataclass(frozen=True, slots=True)
class Entity:
    kind: str  # "mention" | "hashtag" | "link"
    start: int
    end: int
    value: str  # the username (as written), the tag (lower case) or the URL

    def as_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": self.start, "end": self.end, "value": self.value}


def parse_entities(text: str) -> list[Entity]:
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []
    for match in _LINK.finditer(text):
        url = match.group(0).rstrip(_TRAILING)
        start = match.start()
        found.append(Entity("link", start, start + len(url), url))
        taken.append((start, start + len(url)))

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    for match in _MENTION.finditer(text):
        if free(match.start(), match.end()):
            found.append(Entity("mention", match.start(), match.end(), match.group(1)))
    for match in _HASHTAG.finditer(text):
        tag = match.group(1)
        if free(match.start(), match.end()) and not tag.isdigit():
            found.append(Entity("hashtag", match.start(), match.end(), tag.lower()))
    return sorted(found, key=lambda e: e.start)


def entities_from_json(raw: list[dict[str, Any]]) -> list[Entity]:
    return [Entity(e["kind"], e["start"], e["end"], e["value"]) for e in raw]
