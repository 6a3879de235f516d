"""The batch life cycle behind both the CLI and the chat commands: create, add strata,
publish, draw, cancel, recuse, export (SPEC §2 steps 3–6, DRAW.md)."""
