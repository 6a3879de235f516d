"""What every feature's handlers share: the arguments after the command word, refusals
with the right form of the command, and the task a button or ``任务=`` names."""

from __future__ import annotations

from bot.chat.context import Context
from bot.refusal import Refusal
from bot.rules.arguments import ArgumentError, Arguments, parse_arguments
from bot.texts import say
from storage import audit


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


def refuse(ctx: Context, refusal: Refusal, command: str) -> None:
    """Say why; for a malformed request also the right form; audit a refusal of authority."""
    text = refusal.text()
    if refusal.message in ("bad_arguments", "missing_argument"):
        text = f"{text}\n{say('help', 'usage', name=command)}"
    if refusal.message in ("not_on_task", "not_your_unit"):
        audit.record(ctx.session, ctx.actor_label, "refused", command, reason=refusal.message,
                     **{k: str(v) for k, v in refusal.values.items()})
    ctx.reply(text)


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
