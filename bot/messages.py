"""Every user-facing Chinese string, in one place, so the tone stays one voice.

Short, plain, polite; no exclamation marks on reminders, no demands for instant replies.
"""

from __future__ import annotations

NOT_ON_ROSTER = "您好，您不在本机关党员名册中，暂时无法使用党建助手。如有疑问请联系党委办。"
DEACTIVATED = NOT_ON_ROSTER
FORBIDDEN = "「{command}」仅限{who}使用。"
HELP_HEADER = "您好，{name}。可以这样对我说："
HELP_FOOTER = "说「帮助」随时查看本说明。学习记录自愿填写，不排名、不打卡。"
UNKNOWN_COMMAND = "没听懂「{text}」。"
EMPTY_MESSAGE = "请发文字消息。说「帮助」查看可用命令。"
INTERNAL_ERROR = "抱歉，处理时出了点问题，请稍后再试；已记下，管理员会查看。"
WELCOME = "您好，{name}。我是模范机关党建助手：提醒会议、记录学习、确认通知。说「帮助」查看可用命令。"
AMBIGUOUS_USER = "名字「{name}」对应多人：{candidates}。请用企业微信账号。"
NO_SUCH_USER = "名册中没有「{name}」。"
