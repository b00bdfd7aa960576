"""Every user-facing Chinese string, in one place, so the tone stays one voice.

Short, plain, polite; no exclamation marks on reminders, no demands for instant replies.
"""

from __future__ import annotations

from datetime import date, datetime, time

from bot.clock import local

NOT_ON_ROSTER = "您好，您不在本机关党员名册中，暂时无法使用党建助手。如有疑问请联系党委办。"
DEACTIVATED = NOT_ON_ROSTER
FORBIDDEN = "「{command}」仅限{who}使用。"
HELP_HEADER = "您好，{name}。可以这样对我说："
HELP_FOOTER = "学习记录自愿填写，不排名、不打卡。"
HELP_MORE = "说「帮助 命令」查看说明，如：帮助 安排"
HELP_UNKNOWN = "您可用的命令里没有「{word}」。说「帮助」查看可用命令。"
UNKNOWN_COMMAND = "没听懂「{text}」。"
EMPTY_MESSAGE = "请发文字消息。说「帮助」查看可用命令。"
INTERNAL_ERROR = "抱歉，处理时出了点问题，请稍后再试；已记下，管理员会查看。"
WELCOME = (
    "您好，{name}。我是模范机关党建助手：提醒会议、记录学习、确认通知。说「帮助」查看可用命令。"
)
AMBIGUOUS_USER = "名字「{name}」对应多人：{candidates}。请用企业微信账号。"
NO_SUCH_USER = "名册中没有「{name}」。"

# WeCom
WECOM_INVALID_REPORT = (
    "企业微信未能送达（{date}）：{count} 人不在应用可见范围或账号无效，消息未发出。"
    "请在管理后台检查应用可见范围，或核对名册中的企业微信账号：{who}"
)
WECOM_UNKNOWN_REPORT = (
    "企业微信未确认送达（{date}）：发给 {count} 人的 {n} 条消息发出后没有收到应答（超时或连接中断），"
    "可能已送达，也可能没有；为免重复，超过企业微信的查重时限后不再重发。如事关紧要，请向本人核实：{who}"
)

# Reminders ---------------------------------------------------------------------------------
# Proactive messages from schedules/*. Plain and short; no exclamation marks, no demands for
# instant replies. Names in lists are cut after REMINDER_MAX_NAMES.

REMINDER_MAX_NAMES = 30
R_NAMES_MORE = "等{count}人"
R_PERIOD_NAMES = {"month": "月", "quarter": "季度", "half": "半年", "year": "年"}
R_CADENCE = (
    "{branch}：本{period}{kind}应召开{minimum}次，目前已召开{held}次，距{period}末还有{days}天。"
    "请及时安排（发「安排 {kind} 日期 时间 地点 主题」）。"
)
R_CADENCE_GROUPS = (
    "{branch}：本{period}以下党小组尚未召开{kind}：{groups}。距{period}末还有{days}天，请督促安排。"
)
R_CADENCE_LEADERSHIP = (
    "本{period}{kind}应召开{minimum}次，目前已召开{held}次，距{period}末还有{days}天，请及早筹备。"
)
R_TALKS = "{branch}：今年尚未开展谈心谈话的党员（{count}人）：{names}。距年底还有{days}天。"
R_MEETING_DAY_BEFORE = (
    "会议提醒：{when}召开{kind}，地点：{place}。{topic}如需请假，回复「请假 原因」。"
)
R_MEETING_TOPIC = "内容：{topic}。"
R_MEETING_PLACE_UNSET = "待定"
R_MEETING_HOUR_BEFORE = "{kind}将于{time}开始，地点：{place}。到场后回复「签到」。"
R_MEETING_CONFIRM = (
    "{when}的{kind}已结束：签到{signed}人，请假{leave}人，未签到{absent}人{names}。"
    "请核对考勤（发「考勤」查看；代为登记补学发「补学 姓名」）。"
)
R_MEETING_MAKEUP = (
    "您未参加{when}的{kind}，请抽时间补学会议内容{topic}，学完告诉支部书记登记补学即可。"
)
R_THEME_DAY = "{date}是{branch}主题党日。{detail}"
R_THEME_DAY_PLANNED = "活动安排：{when}，地点：{place}。"
R_THEME_DAY_SECRETARY = (
    "{branch}：{date}是本月主题党日，目前还没有安排活动。"
    "安排后发「安排 主题党日 日期 时间 地点 主题」，党员会收到提醒。"
)
R_DUES = "{month}党费请按时交纳，交纳后回复「已交党费」即可登记。"
R_DUES_LIST = "{branch}：{month}党费尚未交纳（{count}人）：{names}。"
R_DUES_FLAG = (
    "{branch}：以下党员已连续多月未交纳党费，请及时了解情况：{items}。"
    "按规定，连续{leave}个月无正当理由不交纳党费的，按自行脱党处理。"
)
R_DUES_FLAG_ITEM = "{name}（{months}个月）"
R_BIRTHDAY_LIST = "{branch}本月过政治生日的党员：{items}。"
R_BIRTHDAY_LIST_ITEM = "{name}（{date}，入党{years}周年）"
R_BIRTHDAY = "{name}同志：{date}是您的政治生日，入党{years}周年。不忘初心，牢记使命。"
R_MILESTONE = (
    "{branch}：「{name}」将于{due}截止，还有{days}天。{submit}完成后发「进度 {name} 说明 完成」。"
)
R_MILESTONE_SUBMIT = "请按时报送材料。"
R_MILESTONE_OVERDUE = (
    "{branch}：「{name}」已于{due}截止，尚未完成（逾期{days}天）。"
    "完成后发「进度 {name} 说明 完成」。"
)
R_OVERDUE_SUMMARY = "逾期未完成事项（{count}项）：\n{lines}"
R_OVERDUE_LINE = "· {branch}「{name}」，{due}截止，逾期{days}天"
R_NOTICE_NUDGE = "通知{id}「{summary}」还没有确认收到。看过后回复「收到 {id}」即可。"
R_NOTICE_UNCONFIRMED = (
    "{branch}：通知{id}「{summary}」尚未确认的党员（{count}人）：{names}。"
    "可发「催办 {id}」私信提醒一次。"
)
R_STUDY_PACE = (
    "今年您已记录学习{hours}学时，全年目标{target}学时，按进度本季度末宜达到{pace}学时。"
    "学习记录自愿填写，仅您本人和支部书记可见。"
)
R_STUDY_WEEKLY = (
    "本周学习提示：今年已记录{hours}学时，全年目标{target}学时。"
    "学习后回复「学习 时长 内容」即可记录。"
)
R_DIGEST = "{branch}本周工作提示：\n{lines}"
R_DIGEST_CADENCE = "· 本{period}{kind}：已召开{held}/{minimum}次"
R_DIGEST_DUES = "· {month}党费未交{count}人"
R_DIGEST_NOTICES = "· 通知{id}未确认{count}人"
R_DIGEST_TASK = "· 「{name}」{due}截止{overdue}"
R_DIGEST_OVERDUE = "（已逾期）"
R_DIGEST_MEETING = "· 近期会议：{when} {kind}"
R_DIGEST_ALL_CLEAR = "· 本期要求均已完成，继续保持。"
R_TERM = "{org}委员会任期将于{end}届满（还有约{months}个月），请提前做好换届准备。"
R_TERM_OVERDUE = (
    "{org}委员会任期已于{end}届满，尚未换届。请按规定及时换届；确需延期的须报上级党组织批准，"
    "延期不超过1年。"
)
R_PROBATION = (
    "{name}的预备期将于{end}期满。请本人按时提交转正申请，支部按期召开支部党员大会讨论转正。"
)
R_LEADER_VISIT = "本季度请安排到联系点{branch}指导工作。{status}"
R_LEADER_VISIT_MISSED = "上季度该支部未达要求：{items}。"
R_LEADER_VISIT_ITEM = "{kind}（{n}{unit}未达）"
R_LEADER_ATTEND = (
    "您的联系点{branch}将于{when}召开组织生活会，请以普通党员身份参加（双重组织生活）。"
)
R_MERGED = "您有{count}条提醒：\n{items}"
R_MERGED_ITEM = "{n}. {text}"

# Formatting ----------------------------------------------------------------------------------
# How dates, times, durations and progress read in every reply (Asia/Shanghai wall time).

WEEKDAY_NAMES = "一二三四五六日"


def md(d: date) -> str:
    """12月5日"""
    return f"{d.month}月{d.day}日"


def ymd(d: date, this_year: int) -> str:
    """12月5日 in this year, else 2025年12月5日."""
    return md(d) if d.year == this_year else f"{d.year}年{md(d)}"


def md_w(d: date) -> str:
    """12月5日（周六）"""
    return f"{md(d)}（周{WEEKDAY_NAMES[d.weekday()]}）"


def hm(t: time | datetime) -> str:
    """14:30, 9:00"""
    return f"{t.hour}:{t.minute:02d}"


def when(at: datetime) -> str:
    """An instant as people read it: 12月5日（周六）14:30."""
    loc = local(at)
    return f"{md_w(loc.date())}{hm(loc)}"


def span(start: datetime, end: datetime) -> str:
    """12月5日（周六）14:30–16:30 (the end's date is shown only when it differs)."""
    a, b = local(start), local(end)
    tail = hm(b) if a.date() == b.date() else when(end)
    return f"{when(start)}–{tail}"


def hours(minutes: float) -> str:
    """Minutes as 学时 with at most one decimal: 90 → 1.5, 120 → 2."""
    h = round(minutes / 60, 1)
    return f"{h:.0f}" if h == int(h) else f"{h:.1f}"


def duration(minutes: int) -> str:
    """40分钟, 1小时30分钟, 2小时."""
    h, m = divmod(minutes, 60)
    if not h:
        return f"{m}分钟"
    return f"{h}小时{m}分钟" if m else f"{h}小时"


def bar(ratio: float, width: int = 10) -> str:
    """A text progress bar: ▰▰▰▱▱."""
    filled = max(0, min(width, round(ratio * width)))
    return "▰" * filled + "▱" * (width - filled)


def preview(text: str, limit: int = 16) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def months(keys: list[str], this_year: int) -> str:
    """["2026-11", "2026-12"] → 11月、12月 (the year shown when it is not this one)."""
    parts = []
    for k in keys:
        y, m = int(k[:4]), int(k[5:])
        parts.append(f"{m}月" if y == this_year else f"{y}年{m}月")
    return "、".join(parts)


def names(people: list[str], limit: int = 30) -> str:
    shown = "、".join(people[:limit])
    return shown + (f"等{len(people)}人" if len(people) > limit else "")


# Chat commands (handlers/*) ----------------------------------------------------------------
# Replies to a person's own message. Errors say what was wrong and show the right form.

BAD_DATE = "日期看不懂：{token}。示例：{example}"
BAD_TIME = "时间看不懂：{token}。示例：{example}"
BAD_DURATION = "时长看不懂：{token}。示例：学习 40分钟 党章（也可写 半小时、1.5小时、一个半小时）"
BAD_MONTH = "月份看不懂：{token}。示例：{example}"
USAGE = "格式：{usage}"
MEMBER_NOT_FOUND = "名册中没有「{name}」。"
MEMBER_AMBIGUOUS = "{branch}有多位「{name}」：{candidates}。请改用企业微信账号。"
MEMBER_OTHER_BRANCH = "{name}不在{branch}，无权为其登记或查看。"
MEETING_NOT_FOUND = "没有编号为{id}的会议。"
MEETING_NOT_YOURS = "会议{id}不是您需要参加的会议。"
MEETING_OTHER_BRANCH = "会议{id}不属于{branch}，无权查看或修改。"
MEETING_CANCELLED = "会议{id}已取消。"
MEETING_BRIEF = "· {kind} {when}{place}（编号{id}）"

# 签到 / 请假
CHECKIN_USAGE = "签到 —— 签到正在进行的会议（会前开放，至会议结束）"
CHECKIN_DONE = "已签到：{kind} {when}{place}。"
CHECKIN_ALREADY = "您已于{at}签到{kind}，无需再签。"
CHECKIN_NONE_NOW = "现在没有可签到的会议（会前{minutes}分钟至会议结束可签到）。"
CHECKIN_NEXT = "您的下一次会议：{kind} {when}{place}。"
CHECKIN_TOO_EARLY = "{kind}（{when}）从{opens}起可签到，届时回复「签到」即可。"
CHECKIN_ENDED = "{kind}（{when}）已结束，不能再签到。如未参加，可请支部书记登记补学。"
BUTTON_CHECKIN = "签到"
BUTTON_LEAVE = "请假"
BUTTON_CHECKED_IN = "已签到"
BUTTON_ON_LEAVE = "已请假"
LEAVE_USAGE = "请假 [原因] —— 向下一次会议请假，支部书记会收到告知"
LEAVE_DONE = "已为您请假：{kind} {when}。"
LEAVE_TOLD = "已告知{who}。"
LEAVE_ADD_REASON = "如需说明原因，可回复「请假 {id} 原因」。"
LEAVE_UPDATED = "请假原因已更新：{reason}。"
LEAVE_ALREADY_SIGNED_IN = "您已签到{kind}，无需请假。"
LEAVE_NONE = "近期没有需要您参加的会议，无需请假。"
LEAVE_ENDED = "{kind}（{when}）已结束，无法请假。"
LEAVE_TO_SECRETARY = "{name}请假：{kind} {when}。原因：{reason}"
LEAVE_REASON_NONE = "未说明"

# 学习 / 打卡
STUDY_USAGE = (
    "学习 [时长] [内容] —— 记录一次学习，如：学习 40分钟 第一议题（自愿填写，也可说「打卡」）"
)
STUDY_DONE = "已记录学习 {duration}{topic}。"
STUDY_NO_MINUTES = "已记录学习{topic}（未填时长，不计学时；下次可说「学习 40分钟 内容」）。"
STUDY_YEAR = "今年累计 {hours} 学时，全年目标 {target} 学时（仅您本人和支部书记可见）。"

# 收到 / 通知 / 未确认 / 催办
CONFIRM_USAGE = "收到 [编号] —— 确认收到最新一条（或指定编号的）通知"
CONFIRM_DONE = "已确认收到通知{id}「{text}」。"
CONFIRM_ALREADY = "通知{id}您已于{at}确认过。"
CONFIRM_NOTHING = "目前没有待确认的通知。"
CONFIRM_NOT_YOURS = "没有发给您的通知{id}，请核对编号。"
BUTTON_CONFIRM = "确认收到"
BUTTON_CONFIRMED = "已确认"
NOTIFY_USAGE = "通知 <范围> <内容> [截止 日期 时间] —— 范围：全体、书记或支部名称，多个用、隔开"
NOTIFY_EXAMPLE = "通知 全体 请于本周五前报送学习计划 截止 12月5日"
NOTIFY_EMPTY = "通知内容是空的。示例：{example}"
NOTIFY_TOO_LONG = "通知太长（{n}字），请控制在{max}字以内。"
SCOPE_UNKNOWN = (
    "找不到范围「{token}」。范围可以是：全体、书记，或支部名称（如 {example}），多个用、隔开。"
)
SCOPE_AMBIGUOUS = "「{token}」对应多个支部：{names}。请写全称。"
SCOPE_EMPTY = "范围「{scope}」里没有在册党员，通知未发出。"
NOTIFY_DONE = "已发出通知{id}，共{n}人{later}。{deadline}说「未确认 {id}」或「总览」查看确认情况。"
NOTIFY_LATER = "（非工作时间，将于{at}送达）"
NOTIFY_DEADLINE = "截止：{at}。"
NOTICE_CARD_DESC = "{sender} · {date}"
NOTICE_SENDER_DEFAULT = "党委办"
NOTICE_FALLBACK = "通知{id}：{text}{deadline}\n看过后回复「收到 {id}」确认。"
NOTICE_FALLBACK_DEADLINE = "（截止：{at}）"
NOTICE_SEE_ABOVE = "全文见上一条消息。"
NOTICE_CARD_DEADLINE = "截止"
NOTICE_ROBOT = "【通知{id}】{text}{deadline}\n请在与党建助手的私聊中确认收到，无需在群里回复。"
NUDGE_TITLE = "通知{id}尚未确认"
UNCONFIRMED_USAGE = "未确认 [编号] —— 谁还没确认通知（书记看名单，党委办看各支部人数）"
UNCONFIRMED_BRANCH = "通知{id}「{text}」：{branch}已确认 {confirmed}/{total}。"
UNCONFIRMED_NAMES = "未确认：{names}。可说「催办 {id}」私信提醒一次。"
UNCONFIRMED_NONE = "本支部已全部确认。"
UNCONFIRMED_BUREAU = "通知{id}「{text}」：已确认 {confirmed}/{total}。各支部："
UNCONFIRMED_BUREAU_LINE = "· {branch} {confirmed}/{total}"
NO_NOTICE = "还没有发给本支部的通知。"
NOTICE_NOT_FOUND = "没有通知{id}。"
NOTICE_NOT_IN_BRANCH = "通知{id}没有发给{branch}。"
NUDGE_USAGE = "催办 [编号] —— 私信提醒本支部未确认通知的党员一次（计入每人最多两次的提醒）"
NUDGE_DONE = "已私信提醒{n}人{later}。"
NUDGE_CAPPED = "{n}人已提醒满{cap}次，不再提醒。"
NUDGE_NONE = "通知{id}本支部已全部确认，无需催办。"

# 状态 / 总览 / 我的 / 考勤 / 未学习
STATUS_USAGE = (
    "状态 [支部] —— 支部本期会议、学时、通知、党费、任务和近期会议（党委办、党委委员可指定支部）"
)
STATUS_HEADER = "{branch} · {today}"
STATUS_CADENCE = "三会一课与组织生活："
CADENCE_LINE = "· {name}（{rule}）：{period}{held}/{minimum} {bar} {state}"
CADENCE_RULE = "每{period}≥{minimum}次"
PERIOD_NAMES = {"month": "月", "quarter": "季度", "half": "半年", "year": "年"}
PERIOD_THIS = {"month": "本月", "quarter": "本季度", "half": "本半年", "year": "今年"}
CADENCE_MET = "✓"
CADENCE_OWED = "还剩{days}天"
CADENCE_SCHEDULED = "，已安排{n}次"
STATUS_NO_RULES = "本支部没有需要统计的会议要求。"
STATUS_FIRST_TOPIC_MISSING = "支委会未记录第一议题：{days}（说「第一议题 会议编号 内容」补记）"
STATUS_STUDY = "学时：全支部今年 {hours}/{target} {bar}，按进度应达 {pace}"
STATUS_STUDY_BEHIND = "落后进度 {n} 人（说「未学习」查看，仅书记可见）"
STATUS_NOTICE = "通知{id}「{text}」：{n}人未确认（共{total}人）"
STATUS_NOTICES_ALL_CONFIRMED = "近期通知均已确认。"
STATUS_DUES_UNPAID = "{month}月党费未交 {n} 人：{names}"
STATUS_DUES_ALL_PAID = "{month}月党费已全部交纳。"
AND_MORE = "等{n}人"
STATUS_TASK_OVERDUE = "任务「{name}」{due}截止，已逾期{days}天"
STATUS_TASK_DUE = "任务「{name}」{due}截止，还有{days}天"
STATUS_NEXT = "近期会议："
STATUS_NO_NEXT = "近期没有已安排的会议。"
STATUS_NO_BRANCH = "找不到支部「{name}」。"
STATUS_OTHER_BRANCH = "您只能查看本支部（{branch}）的状态。"
OVERVIEW_USAGE = "总览 —— 各支部本期还欠什么，附合规自查分（按支部，不排名）"
OVERVIEW_HEADER = "总览 · {today} · 共{n}个支部"
OVERVIEW_EXPLAIN = (
    "按本期还欠的事项由多到少排列，不是排名；分数是支部合规自查分（满分100），"
    "括号里是完成/应完成，只按支部计算，不针对个人。"
)
OVERVIEW_SCORES_AS_OF = "分数按截至{day}的记录每日计算；本期还欠的事项和通知确认是实时的。"
OVERVIEW_NOTICE_TOTAL = "通知{id}「{text}」：已确认 {confirmed}/{total}"
OVERVIEW_BRANCH = "▸ {branch} {total}：{parts}"
SCORE_TOTAL = "{score}分"
SCORE_NONE = "（暂无到期要求）"
SCORE_PART = "{label}{points}/{weight}（{done}/{due}）"
SCORE_PART_NONE = "{label}暂无到期"
SCORE_PART_NAMES = {
    "cadence": "会议",
    "attendance": "出勤",
    "dues": "党费",
    "tasks": "任务",
    "study": "学习",
}
OVERVIEW_OWES = "  本期还欠：{items}"
OVERVIEW_OWES_NOTHING = "  本期要求已完成"
OVERVIEW_OWED_ITEM = "{name}{n}次（还剩{days}天）"
OVERVIEW_OVERDUE_TASKS = "逾期任务{n}项"
OVERVIEW_NOTICE = "；通知{id}已确认 {confirmed}/{total}"
OVERVIEW_REST = (
    "……另有{n}个支部未列出（其中{owing}个本期仍有欠项）；命令行 mofan status --json 可看全部。"
)
MINE_USAGE = "我的 —— 本人今年的学时、出勤、党费、待确认通知和近期会议"
MINE_HEADER = "{name}（{branch}）· {today}"
MINE_STUDY = "学时：今年 {hours}/{target} {bar}（按进度应达 {pace}；仅您本人和支部书记可见）"
MINE_ATTENDANCE = (
    "会议：今年应参加 {total} 次，签到 {signed}，请假 {leave}，补学 {made_up}，未到 {absent}"
)
MINE_ATTENDANCE_NONE = "会议：今年还没有需要您参加且已结束的会议。"
MINE_DUES = "党费：今年已交 {paid}"
MINE_DUES_NONE = "党费：今年还没有登记"
MINE_DUES_UNPAID = "；未交 {unpaid}（交纳后说「已交党费 月份」登记）"
MINE_NOTICES = "待确认通知：{items}（回复「收到 编号」确认）"
MINE_NOTICES_NONE = "待确认通知：无"
MINE_NOTICE_ITEM = "{id}「{text}」"
MINE_NEXT = "近期会议："
MINE_NO_NEXT = "近期没有需要您参加的会议。"
ATTENDANCE_USAGE = "考勤 [会议编号/类型/日期] —— 谁签到、谁请假、谁未到"
ATTENDANCE_HEADER = "{kind} {span}（编号{id}）：应到 {total} 人"
ATTENDANCE_SIGNED = "签到 {n}：{names}"
ATTENDANCE_LEAVE = "请假 {n}：{names}"
ATTENDANCE_ABSENT = "未到 {n}：{names}"
ATTENDANCE_NOT_YET = "未签到 {n}：{names}"
ATTENDANCE_MADE_UP = "补学 {n}：{names}"
ATTENDANCE_MAKEUP_HINT = "为未到的党员登记补学：补学 姓名 {id}"
ATTENDANCE_NO_MEETING = "本支部还没有已开始的会议。"
ATTENDANCE_NOT_STARTED = "会议{id}还没开始（{when}）。"
ATTENDANCE_NO_MATCH = "没有找到「{text}」对应的会议。"
STUDY_BEHIND_USAGE = "未学习 —— 本支部学时落后全年进度的党员（仅书记可见，不排名）"
STUDY_BEHIND_HEADER = (
    "今年已过 {percent}%，按进度应达：党员 {member_pace} 学时、支委 {committee_pace} 学时。"
)
STUDY_BEHIND_LINE = "· {name} {hours}/{target}"
STUDY_BEHIND_NONE = "本支部党员的学时都跟上了进度。"
STUDY_BEHIND_FOOTER = "仅供您了解情况、个别提醒，请勿公开通报或排名。"

# 安排 / 第一议题 / 补学
SCHEDULE_USAGE = "安排 <类型> <日期> <时间> [地点] [主题] —— 如：安排 支委会 12月5日 14:30 三楼会议室 第一议题学习"
SCHEDULE_EXAMPLE = "安排 支委会 12月5日 14:30 三楼会议室 第一议题学习"
SCHEDULE_BAD_KIND = "会议类型看不懂：{token}。可以是：{kinds}。示例：{example}"
SCHEDULE_NO_DATE = "缺少日期。示例：{example}"
SCHEDULE_NO_TIME = "缺少时间。示例：{example}"
SCHEDULE_NO_GROUP = "请说明是哪个党小组：{groups}。示例：安排 党小组会 {group} 12月5日 14:30"
SCHEDULE_NO_GROUPS = "本支部没有党小组，无法安排党小组会。"
SCHEDULE_OTHER_BRANCH = "{name}不属于{branch}，只能为本支部安排会议。"
SCHEDULE_DONE = "已安排：{kind} {span}{place}{topic}（编号{id}）。已通知{n}人（{audience}）{later}。会前{minutes}分钟起可签到；说「考勤 {id}」查看签到。"
SCHEDULE_PAST = "已补录：{kind} {span}{place}{topic}（编号{id}）。会议时间已过，计入已召开；说「考勤 {id}」查看，「补学 姓名 {id}」登记补学。"
SCHEDULE_DUPLICATE = "{kind} {when}已经安排过了（编号{id}），没有重复安排。"
SCHEDULE_HOLIDAY = "注意：{date}是{holiday}。"
SCHEDULE_TOO_FAR = "日期{date}太远了，只能安排一年以内的会议。"
SCHEDULE_TOO_OLD = "日期{date}太早了，只能补录今年的会议。"
AUDIENCE_COMMITTEE = "支委"
AUDIENCE_GROUP = "{group}党员"
AUDIENCE_BRANCH = "全支部党员"
MEETING_CARD_DESC = "{branch}"
MEETING_CARD_WHEN = "时间"
MEETING_CARD_PLACE = "地点"
MEETING_FALLBACK = "会议通知：{kind}，{span}{place}{topic}。会前{minutes}分钟起回复「签到 {id}」签到；不能参加请回复「请假 {id} 原因」。"
FIRST_TOPIC_USAGE = "第一议题 [会议编号] <内容> —— 记录支委会第一议题学习的内容"
FIRST_TOPIC_DONE = "已记录第一议题：{kind} {when}（编号{id}）——{text}"
FIRST_TOPIC_NO_MEETING = "还没有可记录第一议题的支委会。请先「安排 支委会 …」。"
FIRST_TOPIC_EMPTY = "请写明学习内容。示例：第一议题 {id} 学习习近平总书记最新重要讲话精神"
MAKEUP_USAGE = "补学 <姓名> [会议编号] —— 为缺席的党员登记补学"
MAKEUP_DONE = "已登记：{name} 补学 {kind} {when}（编号{id}）。"
MAKEUP_NOTHING = "{name}没有需要补学的会议。"
MAKEUP_NOT_MISSED = "{name}已签到或已补学会议{id}，无需登记。"
MAKEUP_NOT_ENDED = "会议{id}还没结束，结束后再登记补学。"
MAKEUP_NOT_INVITED = "{name}不是会议{id}的参会人员。"

# 任务 / 进度
TASK_USAGE = (
    "任务 <名称> <截止日期> [范围] —— 为范围内每个支部建立任务，如：任务 报送整改清单 12月20日 全体"
)
TASK_EXAMPLE = "任务 报送整改清单 12月20日 全体"
TASK_NO_NAME = "请写任务名称。示例：{example}"
TASK_NO_DATE = "缺少截止日期。示例：{example}"
TASK_PAST = "截止日期{date}已过，请写今天或以后的日期。"
TASK_DONE = "已为{n}个支部建立任务「{name}」，{due}截止。各支部书记已收到通知{later}。"
TASK_EXISTING = "其中{n}个支部已有同名同日的任务，没有重复建立。"
TASK_NO_BRANCHES = "范围里没有支部，任务未建立。"
TASK_NOTE = "新任务：「{name}」，{due}截止。完成后发「进度 {name} 说明 完成」；进展可随时发「进度 {name} 说明」。"
PROGRESS_USAGE = "进度 <任务> <说明> [完成] —— 报告任务进展，最后写「完成」即标记完成"
PROGRESS_NO_TASK = "本支部没有任务「{name}」。{open}"
PROGRESS_OPEN_LIST = "未完成的任务：{names}。"
PROGRESS_NO_OPEN = "本支部目前没有未完成的任务。"
PROGRESS_AMBIGUOUS = "「{name}」对应多个任务：{names}。请写全称。"
PROGRESS_DONE = "已记录任务「{name}」的进展{done}。"
PROGRESS_MARKED_DONE = "，并标记为完成"
PROGRESS_NO_NOTE = "请写明进展。示例：进度 {name} 已完成初稿；完成时：进度 {name} 已报送 完成"
PROGRESS_ALREADY_DONE = "任务「{name}」已于{at}完成；这次的说明也记下了。"

# 已交党费
DUES_USAGE = "已交党费 [月份] —— 登记本人党费，如：已交党费 11月"
DUES_USAGE_SECRETARY = "已交党费 <姓名> [月份] [撤销] —— 代党员登记（或更正）党费"
DUES_EXAMPLE = "已交党费 11月"
DUES_DONE = "已登记{who}{months}党费。"
DUES_ALREADY = "{who}{months}党费已登记过。"
DUES_WHO = "{name}"
DUES_TOO_FAR = "月份{month}太远了，最多可预先登记12个月。"
DUES_ONLY_SECRETARY = "为他人登记党费仅限支部书记、支委。您自己的党费说「已交党费 月份」。"
DUES_UNDONE = "已撤销{who}{months}党费登记。"
DUES_NOTHING_TO_UNDO = "{who}{months}没有党费登记，无需撤销。"

# 意见 / 办实事 / 报告 / 已阅
FEEDBACK_USAGE = "意见 <内容> —— 向党委办提意见、建议或投诉"
FEEDBACK_EMPTY = "请写下您的意见或建议。示例：意见 周末请不要发提醒"
FEEDBACK_DONE = "已转给党委办，谢谢（意见{id}）。"
FEEDBACK_TO_OFFICE = "意见{id}（{name}，{branch}）：{text}"
DEED_USAGE = "办实事 <内容> —— 记录一件「我为群众办实事」"
DEED_EMPTY = "请写下办的实事。示例：办实事 帮社区老人代办医保续缴"
DEED_DONE = "已记入{branch}「我为群众办实事」台账（编号{id}）。"
REPORT_USAGE = "报告 <内容> —— 向党委请示报告重大事项"
REPORT_EMPTY = "请写明报告内容。示例：报告 拟于12月召开支部党员大会进行换届选举"
REPORT_DONE = "已报送党委办（报告{id}），党委办阅后会告知您。"
REPORT_CARD_TITLE = "请示报告{id}"
REPORT_FALLBACK = (
    "请示报告{id}（{branch} {name}）：{text}\n阅后回复「已阅 {id}」，报告人会收到告知。"
)
BUTTON_ACK = "已阅"
ACK_USAGE = "已阅 <报告编号> —— 告知报告人其请示报告已阅"
ACK_DONE = "已告知{name}：报告{id}已阅。"
ACK_ALREADY = "报告{id}已于{at}阅过。"
ACK_NOT_FOUND = "没有报告{id}。示例：已阅 3"
ACK_TO_REPORTER = "您的请示报告{id}党委办已阅：{text}"

# WeCom: mofan doctor
DOCTOR_CONFIG_OK = "配置：{source}"
DOCTOR_CONSOLE_MODE = '当前为控制台模式（bot.channel = "console"）：消息只打印在控制台，不发往企业微信。要接入企业微信，请设 bot.channel = "wecom" 并填写 [wecom]。'
DOCTOR_DB_OK = "数据库：可以连接，表结构为最新版本（{revision}）。"
DOCTOR_DB_DOWN = (
    "数据库：连接不上 {url}（{error}）。请检查 database.url、数据库服务是否启动、账号密码。"
)
DOCTOR_DB_EMPTY = "数据库：还没有建表。请先运行 `mofan init`。"
DOCTOR_DB_BEHIND = (
    "数据库：表结构版本 {current} 落后于程序需要的 {head}。请运行 `mofan db upgrade`。"
)
DOCTOR_MISSING = "{key} 未填写：{where}"
DOCTOR_WHERE = {
    "corp_id": "管理后台「我的企业 → 企业信息」最下方的企业ID（一般以 ww 开头）。",
    "agent_id": "管理后台「应用管理 → 本应用」页面上的 AgentId。",
    "secret": "「应用管理 → 本应用 → Secret」（在企业微信客户端查看），也可放在环境变量 MOFAN_WECOM_SECRET。",
    "token": "「应用管理 → 本应用 → 接收消息 → 设置API接收」里的 Token（可点「随机获取」）。",
    "encoding_aes_key": "同一页面的 EncodingAESKey（43 位，可点「随机获取」）。",
}
DOCTOR_TOKEN_BAD = (
    "wecom.token 应为 3–32 位英文字母或数字，与管理后台「设置API接收」里的 Token 一致。"
)
DOCTOR_AES_BAD = "wecom.encoding_aes_key 应为 43 位字母和数字（管理后台「设置API接收」里的 EncodingAESKey），当前 {length} 位或含其他字符。"
DOCTOR_CALLBACK_OK = "回调设置：Token 与 EncodingAESKey 格式正确。管理后台的接收消息 URL 请填 https://<本服务的域名>/wecom/callback（域名须备案且与企业主体相关）。"
DOCTOR_REACH_FAIL = "连不上企业微信接口 {base}（{error}）：请检查网络、代理和防火墙；政务微信或私有部署的接口地址不同，请核对 wecom.api_base。"
DOCTOR_TOKEN_OK = "接口：{base} 可以访问，access_token 获取成功。"
DOCTOR_AGENT_OK = "应用：「{name}」（AgentId {agent_id}），本机 IP 已在企业可信IP 中。"
DOCTOR_ERRCODE = {
    40013: "企业ID不对（错误码 40013）：wecom.corp_id 应为管理后台「我的企业 → 企业信息」最下方的企业ID。",
    40001: "应用 Secret 不对（错误码 40001）：请在「应用管理 → 本应用 → Secret」重新查看并填入 wecom.secret（或 MOFAN_WECOM_SECRET），注意不要多复制空格；Secret 重置后旧的即失效。",
    60020: "本机出口 IP 不在应用的「企业可信IP」中（错误码 60020）{ip}：请在「应用管理 → 本应用 → 开发者接口 → 企业可信IP」添加本服务器的公网出口 IP。2022 年 6 月 20 日以后创建的应用必须配置，且须先设置可信域名或接收消息 URL。",
    40056: "AgentId 不对（错误码 40056）：wecom.agent_id 应为「应用管理 → 本应用」页面上的 AgentId。",
    301002: "AgentId 与 Secret 不属于同一个应用（错误码 301002）：请核对 wecom.agent_id 和 wecom.secret。",
    48002: "应用没有调用该接口的权限（错误码 48002）：请检查应用的可见范围和接口权限。",
    45009: "接口调用过于频繁（错误码 45009）：请稍后再试。",
    -1: "企业微信系统繁忙（错误码 -1）：请稍后再试。",
}
DOCTOR_ERRCODE_OTHER = "企业微信返回错误码 {errcode}：{errmsg}。可在 https://open.work.weixin.qq.com/devtool/query?e={errcode} 查询。"
DOCTOR_SUMMARY_OK = "检查通过。"
DOCTOR_SUMMARY_FAIL = "有 {count} 项需要处理，见上面标 ✗ 的行。"


# 导出 台账 and the explained scorecard (handlers/ledger.py, bot/ledger.py, bot/scorecard.py) -------
LEDGER_USAGE = "导出 台账 [年份] —— 年度台账（Excel），书记导出本支部"
LEDGER_BAD_YEAR = "年份看不懂：{token}。示例：导出 台账 2026"
LEDGER_FUTURE_YEAR = "{year}年还没有开始，没有台账可导出。"
LEDGER_NO_BRANCH = "没有可导出的支部。"
LEDGER_DONE = "已生成{year}年台账（{scope}：{branches}个支部，{meetings}次会议），文件随后发给您。"
LEDGER_DONE_PATH = "文件位置：{path}"
LEDGER_FAILED = "台账文件没能写出（{error}），请管理员检查 ledger.export_dir 的位置和磁盘空间。"
LEDGER_FILE_TEXT = "{year}年台账（{scope}）：{name}"
LEDGER_SCOPE_ALL = "全部支部"
LEDGER_STUDY_PRIVATE = (
    "按人学时只有本人和支部书记可见：各支部书记发「导出 台账」可得到本支部的按人学习台账。"
)
SCORE_RANK = "第{rank}名"
OVERVIEW_LEDGER_HINT = "每项分数统计了什么、还欠什么，见「导出 台账」文件的“合规自查”表。"
SCORE_LABELS = {
    "cadence": "会议按期召开",
    "attendance": "参会出勤",
    "dues": "党费按月交纳",
    "tasks": "任务和节点按期完成",
    "study": "学习",
}
SCORE_COUNTED = {
    "cadence": "自{since}有记录起，应按期召开的会议周期{due}个，达到次数要求的{done}个",
    "attendance": "已结束的会议应到{due}人次（请假的不计），出席或补学{done}人次",
    "dues": "应交党费{due}人·月（自{month}月起），已交{done}人·月",
    "tasks": "已到期的任务和节点{due}项，按期完成{done}项",
    "study": "学时达到进度的党员{done}人，共{due}人",
}
SCORE_NOTHING_DUE = "暂无到期要求，不计入总分"
SCORE_OWES_NOTHING = "无欠项"
SCORE_CADENCE_MISSED = "未达标：{items}"
SCORE_CADENCE_OPEN = "本期还差：{items}"
SCORE_PERIOD_ITEM = "{rule}{period}（{held}/{minimum}次）"
SCORE_OPEN_ITEM = "{rule}{period}{n}次（还剩{days}天）"
SCORE_RULE_GROUP = "{kind}（{group}）"
SCORE_ATTENDANCE_OWED = "缺席且未补学{n}人次，可安排补学"
SCORE_DUES_OWED = "未交{n}人·月"
SCORE_TASKS_OPEN = "逾期未完成：{items}"
SCORE_TASKS_LATE = "逾期完成：{items}"
SCORE_STUDY_NO_WEIGHT = (
    "不计分：学习时长不作为考核依据（国办2026年《政务移动互联网应用程序规范化管理办法》），"
    "学时只作学习记录"
)
SCORE_ITEMS_MORE = "等{n}项"


def period_label(start: date, period: str) -> str:
    """The period starting on ``start``: 3月, 第二季度, 上半年, 全年."""
    if period == "month":
        return f"{start.month}月"
    if period == "quarter":
        return f"第{'一二三四'[(start.month - 1) // 3]}季度"
    if period == "half":
        return "上半年" if start.month <= 6 else "下半年"
    return "全年"
