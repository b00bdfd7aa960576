"""学习 / 打卡: record a study session the member says they did, with its length and topic.

Voluntary and private: no streaks, no daily quota, no reminder to "keep it up"; the reply
states the year's total against the target, which only the member and their secretary see.
``学习 40分钟 第一议题：…``, ``打卡 一个半小时 党史``, ``学习 1.5小时``. Said without a
duration, the session is recorded with ``bot.default_study_minutes`` minutes; with the
default 0 it is recorded without minutes (it shows in the study register but adds no 学时).
"""

from __future__ import annotations

from bot import messages as msg
from bot.parse import ParseError, take_duration
from bot.roles import EVERYONE
from bot.router import Command, Context, Request
from bot.status import study_progress
from bot.store import record_study
from handlers.common import reply_parse_error


async def handle(req: Request, ctx: Context) -> None:
    try:
        minutes, topic = take_duration(req.args)
    except ParseError as err:
        reply_parse_error(ctx, err, msg.STUDY_USAGE)
        return
    if minutes is None:
        minutes = ctx.settings.bot.default_study_minutes or None
    record_study(session=ctx.session, member=ctx.sender, minutes=minutes, topic=topic, at=ctx.now)
    shown_topic = f"「{msg.preview(topic, 30)}」" if topic else ""
    if minutes:
        ctx.reply(msg.STUDY_DONE.format(duration=msg.duration(minutes), topic=shown_topic))
    else:
        ctx.reply(msg.STUDY_NO_MINUTES.format(topic=shown_topic))
    progress = study_progress(
        session=ctx.session, settings=ctx.settings, members=[ctx.sender], now=ctx.now
    )[0]
    ctx.reply(
        msg.STUDY_YEAR.format(
            hours=msg.hours(progress.minutes), target=msg.hours(progress.target_hours * 60)
        )
    )


COMMANDS = (
    Command(
        name="study",
        quick=True,
        keywords=("学习", "打卡"),
        roles=EVERYONE,
        usage=msg.STUDY_USAGE,
        handle=handle,
    ),
)
