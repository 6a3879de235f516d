"""Every outbox idempotency key and subject, built in one place.

A key is stable for what a message is about and to whom it goes, so whatever queues it
twice (a retried event, several instances running one sweep) queues it once. A
``subject`` names the thing a message is about when the code looks its messages up
again — the cards to grey out once decided, the reminder digests the metrics watch — and
is queried by equality on an index. Imports nothing of ours: storage and every layer
above use it.
"""

from __future__ import annotations

from dataclasses import dataclass

REMINDERS = "reminders"  # the subject of every reminder digest
#: The subject of a message sent once a year (its key is the only record that it was):
#: the retention job keeps such a row for a year, whatever ``[retention] days`` says.
YEARLY = "yearly"


@dataclass(frozen=True)
class Key:
    """An outbox row's idempotency key, and its subject (``None``: never looked up again)."""

    value: str
    subject: str | None = None


def key_of(key: Key | str) -> Key:
    """A plain string is a key without a subject."""
    return key if isinstance(key, Key) else Key(key)


# --- answers to a delivery (bot.chat.context, bot.chat.pipeline) -------------------------


def reply(platform: str, delivery_key: str, flushed: int, n: int | None = None) -> Key:
    """The answer to a delivery: its texts joined (``n`` None) or its ``n``-th other
    message, in the ``flushed``-th round of answers (0: the first)."""
    round_ = f"{flushed}-" if flushed else ""
    return _delivery(platform, delivery_key, f"{round_}reply" if n is None else f"{round_}reply-{n}")


def clicked_card(platform: str, delivery_key: str) -> Key:
    """The update that finishes the card a delivery's click came from."""
    return _delivery(platform, delivery_key, "card")


def failed(platform: str, delivery_key: str) -> Key:
    """The apology for a delivery that failed its last attempt."""
    return _delivery(platform, delivery_key, "failed")


def poisoned(platform: str, delivery_key: str, admin: str) -> Key:
    """An admin told that a delivery was given up after it stopped its handler every time."""
    return _delivery(platform, delivery_key, f"poisoned:{admin}")


def _delivery(platform: str, delivery_key: str, what: str) -> Key:
    return Key(f"event:{platform}:{delivery_key}:{what}")


# --- notices to people and groups (bot.batches.notices) ----------------------------------


def draw(batch_id: str) -> str:
    return f"draw:{batch_id}"


def recusal(assignment_id: int, audience: str) -> str:
    """``audience``: partner | lead | group."""
    return f"recusal:{assignment_id}:{audience}"


def decided(result_id: int, status: str) -> str:
    return f"decided:{result_id}:{status}"


def staffed(assignment_id: int) -> str:
    """The partners told that a member joined by 补员 or 指派 (issue 18 §2)."""
    return f"staffed:{assignment_id}"


def task_closed(task_id: int) -> str:
    """The team told that its task was closed as not inspected (结束任务)."""
    return f"task-closed:{task_id}"


def assisting(task_id: int, inspector_id: str) -> str:
    """The specialist told privately that they assist a task (协助, art. 12)."""
    return f"assist:{task_id}:{inspector_id}"


def to_group(notice: str, platform: str) -> Key:
    """A notice (``draw``, ``recusal`` …) to a platform's group robot."""
    return Key(f"{notice}:{platform}")


def to_person(notice: str, platform: str, address: str) -> Key:
    """A notice (``recusal``, ``decided`` …) to one person on one platform."""
    return Key(f"{notice}:{platform}:{address}")


# --- cards, found again by their subject to be greyed out --------------------------------


def task_card_subject(assignment_id: int) -> str:
    return f"task-card:{assignment_id}"


def task_card(assignment_id: int, platform: str) -> Key:
    return Key(f"task-card:{assignment_id}:{platform}", task_card_subject(assignment_id))


def task_card_closed(outcome: str, sent_id: int) -> Key:
    """The update greying out the task card sent as outbox row ``sent_id``."""
    return Key(f"task-card-close:{outcome}:{sent_id}")


def result_card_subject(task_id: int) -> str:
    return f"result-card:{task_id}"


def result_card(task_id: int, attempt: int, platform: str, address: str) -> Key:
    return Key(f"result-card:{task_id}:{attempt}:{platform}:{address}", result_card_subject(task_id))


def result_card_closed(sent_id: int) -> Key:
    return Key(f"result-card-close:{sent_id}")


def approval_card_subject(result_id: int) -> str:
    return f"approval-card:{result_id}"


def approval_card(result_id: int, platform: str, address: str) -> Key:
    return Key(f"approval-card:{result_id}:{platform}:{address}", approval_card_subject(result_id))


def approval_card_closed(sent_id: int) -> Key:
    return Key(f"approval-close:{sent_id}")


# --- reminders and summaries (bot.reminders.sweep, bot.reports.summary) -----------------


def reminder_digest(recipient: str, first_reminder: int) -> Key:
    """One digest per recipient (``platform:address``) and sweep, named by its first rung."""
    return Key(f"reminders:{recipient}:{first_reminder}", REMINDERS)


def calendar_missing(year: int, platform: str, address: str) -> Key:
    return Key(f"calendar-missing:{year}:{platform}:{address}", YEARLY)


def plan_behind(plan_id: int, year: int, platform: str, address: str) -> Key:
    """The December reminder that a plan is behind its frequency (art. 11), once a year."""
    return Key(f"plan-behind:{plan_id}:{year}:{platform}:{address}", YEARLY)


def summary(kind: str, period: str, platform: str, destination_kind: str, address: str) -> Key:
    return Key(f"summary:{kind}:{period}:{platform}:{destination_kind}:{address}")


def summary_chart(text_key: Key) -> Key:
    """The chart sent after a summary's text."""
    return Key(f"{text_key.value}:chart")


def summary_asked(platform: str, delivery_key: str) -> Key:
    """The chart of a summary asked for with 汇总, to the asker in private (once per delivery)."""
    return _delivery(platform, delivery_key, "summary-chart")


# --- the outbox dispatcher (bot.chat.dispatcher) -----------------------------------------


def send_failed(row_id: int, admin: str) -> Key:
    """An admin told that outbox row ``row_id`` could not be sent."""
    return Key(f"send-failed:{row_id}:{admin}")


def is_send_failed(key: str) -> bool:
    """Whether a row is itself such a notice (a failure of it is not reported again)."""
    return key.startswith("send-failed:")


# --- follow-ups (bot.batches.followup_notices) -------------------------------------------


def followup_card_subject(follow_up_id: int) -> str:
    return f"followup-card:{follow_up_id}"


def followup_card(follow_up_id: int, platform: str, address: str) -> Key:
    """The card telling a receiving unit's lead of a hand-over (art. 18)."""
    return Key(f"followup-card:{follow_up_id}:{platform}:{address}", followup_card_subject(follow_up_id))


def followup_card_closed(sent_id: int) -> Key:
    return Key(f"followup-close:{sent_id}")


def followup_list(batch_id: str, unit_id: str, platform: str, address: str, part: str = "text") -> Key:
    """A batch's hand-over list (汇总移交) to one person of a receiving unit: text or file."""
    return Key(f"followup-list:{batch_id}:{unit_id}:{platform}:{address}:{part}")
