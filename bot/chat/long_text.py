"""Texts longer than a platform takes in one message: split between lines, or clipped."""

from __future__ import annotations


def split_text(text: str, limit: int) -> list[str]:
    """Pieces of at most ``limit`` UTF-8 bytes, cut between lines where possible."""
    parts, current = [], ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if len(candidate.encode()) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        while len(line.encode()) > limit:  # one line longer than a message: cut it
            head = line.encode()[:limit].decode(errors="ignore")
            parts.append(head)
            line = line[len(head):]
        current = line
    if current:
        parts.append(current)
    return parts


def clip(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes, cut at a character boundary with an ellipsis."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode(errors="ignore") + "…"
