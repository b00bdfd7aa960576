"""``mofan fake-wecom …`` and ``mofan doctor`` (DESIGN §4.1).

``mofan fake-wecom`` serves the fake WeCom API (print each message the bot sends);
``say``/``click``/``verify`` play WeCom's side against a running ``mofan serve``;
``calls``/``inbox`` read what a running fake recorded. Heavy imports stay inside commands.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from bot.cli import app, fail, settings

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.fake_wecom import PlayedReply, WeComPlayer

DEFAULT_FAKE_PORT = 9100
DEFAULT_BOT_URL = "http://127.0.0.1:8000"

fake_app = typer.Typer(
    help="A local stand-in for the WeCom API, and WeCom's side of the callback.",
    invoke_without_command=True,
)
app.add_typer(fake_app, name="fake-wecom")


def _config_snippet(port: int, s: Settings) -> str:
    from bot import fake_wecom as fw

    w = s.wecom
    return "\n".join(
        [
            "[bot]",
            'channel = "wecom"',
            "",
            "[wecom]",
            f'corp_id = "{w.corp_id or fw.DEFAULT_CORP_ID}"',
            f"agent_id = {w.agent_id or fw.DEFAULT_AGENT_ID}",
            f'secret = "{"<as configured>" if w.secret else fw.DEFAULT_SECRET}"',
            f'token = "{w.token or fw.DEFAULT_TOKEN}"',
            f'encoding_aes_key = "{w.encoding_aes_key or fw.DEFAULT_AES_KEY}"',
            f'api_base = "http://127.0.0.1:{port}"',
        ]
    )


@fake_app.callback()
def fake_wecom(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port for the fake API.")] = DEFAULT_FAKE_PORT,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    latency: Annotated[float, typer.Option(help="Seconds each API call waits.")] = 0.0,
) -> None:
    """Serve the fake WeCom API (when no sub-command is given)."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from bot import fake_wecom as fw

    s = settings()
    w = s.wecom
    fake = fw.FakeWeCom(
        corp_id=w.corp_id or fw.DEFAULT_CORP_ID,
        secret=w.secret or fw.DEFAULT_SECRET,
        agent_id=w.agent_id or fw.DEFAULT_AGENT_ID,
        latency=latency,
        echo=True,
    )
    base = f"http://{host}:{port}"
    typer.echo(f"fake WeCom API on {base}  (calls: {base}/_calls, inbox: {base}/_inbox)")
    if w.api_base.rstrip("/") != base or s.bot.channel != "wecom":
        typer.echo("To point the bot at it, put this in mofan.toml:\n")
        typer.echo(_config_snippet(port, s) + "\n")
    typer.echo("Messages the bot sends appear below. Ctrl-C to stop.")
    uvicorn.run(fake.app, host=host, port=port, log_level="warning", access_log=False)


def _player(url: str) -> WeComPlayer:
    from bot.fake_wecom import WeComPlayer

    w = settings().wecom
    missing = [k for k in ("corp_id", "token", "encoding_aes_key") if not getattr(w, k)]
    if missing:
        raise fail(
            "Set " + ", ".join(f"wecom.{k}" for k in missing) + " first (the bot and the player "
            "must share them); `mofan fake-wecom` prints a ready-made config."
        )
    return WeComPlayer(
        url=url.rstrip("/") + "/wecom/callback",
        token=w.token,
        encoding_aes_key=w.encoding_aes_key,
        corp_id=w.corp_id,
        agent_id=w.agent_id or 1000002,
    )


def _userid(who: str) -> str:
    """A userid, or a unique name looked up in the roster (like ``mofan chat --as``)."""
    from bot.cli import _resolve_user, runtime

    rt = runtime()
    try:
        return _resolve_user(rt, who)
    except typer.Exit:
        raise
    except Exception:  # no database here: take it as a userid
        return who
    finally:
        rt.engine.dispose()


def _show(reply: PlayedReply) -> None:
    if reply.status != 200:
        raise fail(f"the bot answered HTTP {reply.status} {reply.raw[:200]}")
    if reply.button:
        typer.echo(f"[卡片按钮更新为「{reply.button}」]")
    elif reply.content:
        typer.echo(reply.content)
    else:
        typer.echo("(空回复：机器人稍后经消息接口发送，或无需回复；在 fake-wecom 窗口查看)")


BotUrl = Annotated[str, typer.Option("--url", help="The running bot.")]
As = Annotated[str, typer.Option("--as", help="WeCom userid or a unique name.")]


@fake_app.command()
def say(
    as_user: As,
    text: Annotated[list[str], typer.Argument(help="What the member types.")],
    url: BotUrl = DEFAULT_BOT_URL,
) -> None:
    """Send TEXT as USER to a running bot, signed and encrypted as WeCom does; print the reply."""
    with _player(url) as player:
        _show(player.say(_userid(as_user), " ".join(text)))


@fake_app.command()
def click(
    as_user: As,
    key: Annotated[str, typer.Argument(help="The button's (or menu item's) key, e.g. 收到 12.")],
    menu: Annotated[bool, typer.Option("--menu", help="A menu click, not a card button.")] = False,
    task_id: Annotated[str, typer.Option(help="The card's task_id.")] = "task_1",
    url: BotUrl = DEFAULT_BOT_URL,
) -> None:
    """Click a card button (template_card_event) or a menu item (--menu) as USER."""
    with _player(url) as player:
        userid = _userid(as_user)
        _show(player.menu(userid, key) if menu else player.click(userid, key, task_id=task_id))


@fake_app.command()
def verify(url: BotUrl = DEFAULT_BOT_URL) -> None:
    """Check the callback URL as the admin console does when you save it."""
    with _player(url) as player:
        status, body, expected = player.verify_url()
    if status == 200 and body == expected:
        typer.echo("URL verification passed: the bot decrypted echostr correctly.")
        return
    raise fail(f"URL verification failed: HTTP {status} {body[:200]!r}")


FakeUrl = Annotated[str, typer.Option("--fake", help="The running fake WeCom.")]


@fake_app.command()
def calls(
    api: Annotated[Optional[str], typer.Option(help="Only this API, e.g. message/send.")] = None,  # noqa: UP045
    fake: FakeUrl = f"http://127.0.0.1:{DEFAULT_FAKE_PORT}",
) -> None:
    """Print the calls a running fake WeCom recorded, one JSON object per line."""
    import httpx

    params = {"api": api} if api else {}
    for call in httpx.get(fake.rstrip("/") + "/_calls", params=params).json()["calls"]:
        typer.echo(json.dumps(call, ensure_ascii=False))


@fake_app.command()
def inbox(
    as_user: As,
    fake: FakeUrl = f"http://127.0.0.1:{DEFAULT_FAKE_PORT}",
) -> None:
    """Print what the bot sent USER through a running fake WeCom."""
    import httpx

    from bot.fake_wecom import readable

    userid = _userid(as_user)
    data = httpx.get(fake.rstrip("/") + "/_inbox", params={"user": userid}).json()
    for message in data["inbox"].get(userid, []):
        typer.echo(readable(message))


@app.command()
def doctor() -> None:
    """Check the config, the database and the WeCom connection, and explain what is wrong."""
    from bot import messages
    from bot.db import make_engine
    from bot.doctor import run_checks

    s = settings()  # a bad config stops here, naming the key
    engine = make_engine(s.database.url, busy_timeout_ms=s.database.sqlite_busy_timeout_ms)
    try:
        checks = run_checks(s, engine)
    finally:
        engine.dispose()
    for c in checks:
        typer.echo(f"{c.mark} {c.text}")
    failed = sum(1 for c in checks if c.level == "fail")
    if failed:
        typer.echo(messages.DOCTOR_SUMMARY_FAIL.format(count=failed))
        raise typer.Exit(1)
    typer.echo(messages.DOCTOR_SUMMARY_OK)
