"""WeCom / 政务微信: the only place that knows the WeCom protocol (and imports wechatpy).

- :mod:`.crypto` — callback signature and AES envelope (wechatpy's cipher).
- :mod:`.protocol` — the callback XML in and the passive replies out.
- :mod:`.tokens` — the shared access token in the database, refreshed under a lease.
- :mod:`.api` — the httpx client for the server API (``api_base`` from config).
- :mod:`.channel` — :class:`WeComChannel`, the outbox's way to members.
- :mod:`.report` — the office's daily note of recipients WeCom refused.
"""

from bot.channels.wecom.api import WeComAPI, WeComError
from bot.channels.wecom.channel import WeComChannel

__all__ = ["WeComAPI", "WeComChannel", "WeComError"]
