"""What a handler reads from a command or a click: the ``key=value`` arguments after the
command word, a number, and the task a button or ``任务=`` names. Each raises a
``Refusal`` that says what is wrong."""

from __future__ import annotations

from bot.chat.context import Context
from bot.refusal import Refusal
from bot.rules.arguments import ArgumentError, Arguments, parse_arguments


def arguments_text(ctx: Context) -> str:
    """What follows the command word."""
    parts = (ctx.event.text or "").strip().split(maxsplit=1)
    return parts[1] if len(parts) > 1 else ""


def arguments(ctx: Context, keys: set[str] | frozenset[str]) -> Arguments:
    """The command's ``key=value`` arguments; a Refusal names what is wrong."""
    try:
        return parse_arguments(arguments_text(ctx), keys)
    except ArgumentError as exc:
        raise Refusal("bad_arguments", problem=exc.problem, subject=exc.subject, allowed=exc.allowed) from None


def number(value: str | None, key: str) -> int:
    """A positive whole number given for ``key`` (任务=12)."""
    if value is None or value == "":
        raise Refusal("missing_argument", key=key)
    try:
        found = int(value) if len(value) <= 10 else 0
    except ValueError:
        raise Refusal("bad_number", key=key, value=value) from None
    if not 0 < found < 2**31:  # a database id
        raise Refusal("bad_number", key=key, value=value)
    return found


def task_of(ctx: Context, args: Arguments | None) -> int:
    """The task a card button carries (its value starts with the task id) or ``任务=``."""
    if ctx.event.action is not None:
        return number(ctx.event.action.value.split(":", 1)[0], "task")
    return number(args.get("task") if args else None, "task")
