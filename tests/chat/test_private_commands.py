"""Private commands (SPEC §5: 完成, 取证, 回避, 结果, 批准, 退回, 更正, 处置, 指派) say so
in 帮助, and the answer to one sent in a group names the private chat to use, on every
platform (issue 19 item 9)."""

from __future__ import annotations

import re

from bot.texts import say
from storage.models import Result, Task
from tests.support.chat_tasks import help_routes
from tests.support.wecom_bot import ADMIN, APPROVER, INSPECTOR_IDS
from tests.support.workflow import rows

#: SPEC §5, as it lists them; those not (yet) registered in this build are skipped.
PRIVATE = ["完成", "取证", "回避", "结果", "批准", "退回", "更正", "处置", "指派"]
MARK = "（仅私聊）"
CHAT_NAMED = {"wecom": "企业微信里与本系统应用的单独会话", "dingtalk": "钉钉里与本机器人的单聊",
              "console": "「与双随私聊」窗口"}


def marked(help_text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^· (\S+?)[（：].*" + MARK + "$", help_text, re.M)}


async def test_help_marks_the_private_commands_and_a_group_answer_names_the_private_chat(walk, engine):
    routes = {route.names[0]: route for route in help_routes(walk.app)}
    registered = [name for name in PRIVATE if name in routes]
    assert {"完成", "取证", "回避", "结果", "批准", "退回", "更正"} <= set(registered)
    assert all(routes[name].private_only for name in registered), "SPEC §5 lists them as private"
    assert [name for name, route in routes.items() if route.private_only] == [
        name for name in routes if name in PRIVATE]  # and no other

    admin_help = await walk.group(ADMIN, "@双随 帮助")
    assert marked(admin_help) == set(registered)
    inspector = INSPECTOR_IDS["I01"]
    inspector_help = await walk.say(inspector, "帮助")
    assert marked(inspector_help) == {"完成", "取证", "回避", "结果"}
    assert "确认（confirm）：确认与检查对象无利害关系\n" in inspector_help  # 确认 works anywhere

    named = CHAT_NAMED["dingtalk" if walk.platform.startswith("dingtalk") else walk.platform]
    for who, command in ((inspector, "完成 任务=1"), (inspector, "done task=1"), (APPROVER, "批准 任务=1"),
                         (inspector, "取证 任务=1")):
        answer = await walk.group(who, f"@双随 {command}")
        assert "只能在与我的私聊中使用" in answer and "在群里不执行" in answer, answer
        assert named in answer, answer
    assert rows(engine, Result) == [] and rows(engine, Task) == []


def test_the_console_names_its_private_window():
    answer = say("chat", "private_only", command="结果", platform="console")
    assert "「与双随私聊」窗口" in answer
