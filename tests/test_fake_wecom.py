"""The fake WeCom itself (real error codes, records, controls) and playing WeCom's side from
the command line against a running bot."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

import bot.cli_wecom  # noqa: F401  (registers the commands)
from bot.app import create_app
from bot.fake_wecom import (
    DEFAULT_AES_KEY,
    DEFAULT_AGENT_ID,
    DEFAULT_CORP_ID,
    DEFAULT_SECRET,
    DEFAULT_TOKEN,
    TIMEOUT,
    Chaos,
)
from tests.chatkit import mofan
from tests.factories import small_bureau
from tests.fakes import wecom as fakes
from tests.fakes.live import LiveServer
from tests.fakes.wecom import configure_wecom

fake_wecom = fakes.fake_wecom  # the fixture, used by name


def token(base: str) -> str:
    r = httpx.get(
        base + "/cgi-bin/gettoken", params={"corpid": DEFAULT_CORP_ID, "corpsecret": DEFAULT_SECRET}
    )
    return str(r.json()["access_token"])


def send(base: str, tok: str | None, **body: object) -> dict:
    payload = {"agentid": DEFAULT_AGENT_ID, "msgtype": "text", "text": {"content": "hi"}, **body}
    params = {"access_token": tok} if tok else {}
    return httpx.post(base + "/cgi-bin/message/send", params=params, json=payload).json()


def test_gettoken_errors_are_wecoms(fake_wecom):
    base = fake_wecom.url
    bad_corp = httpx.get(
        base + "/cgi-bin/gettoken", params={"corpid": "x", "corpsecret": DEFAULT_SECRET}
    ).json()
    bad_secret = httpx.get(
        base + "/cgi-bin/gettoken", params={"corpid": DEFAULT_CORP_ID, "corpsecret": "x"}
    ).json()
    assert (bad_corp["errcode"], bad_secret["errcode"]) == (40013, 40001)
    first, again = token(base), token(base)
    assert first == again  # the same token while it lasts
    [call, *_] = fake_wecom.calls_to("gettoken")
    assert call["params"]["corpsecret"] == "***"


def test_message_send_errors_are_wecoms(fake_wecom):
    base = fake_wecom.url
    assert send(base, None, touser="a")["errcode"] == 41001
    assert send(base, "nope", touser="a")["errcode"] == 40014
    tok = token(base)
    assert send(base, tok, touser="a", agentid=1)["errcode"] == 40056
    fake_wecom.control(invalid_users=["Ghost"])
    assert send(base, tok, touser="ghost")["errcode"] == 81013
    partial = send(base, tok, touser="a|ghost")
    assert (partial["errcode"], partial["invaliduser"]) == (0, "ghost")
    fake_wecom.fail("message/send", 45009, times=2)
    assert [send(base, tok, touser="a")["errcode"] for _ in range(3)] == [45009, 45009, 0]
    fake_wecom.expire_tokens()
    assert send(base, tok, touser="a")["errcode"] == 42001
    fake_wecom.control(trusted=False)
    untrusted = send(base, token(base), touser="a")
    assert untrusted["errcode"] == 60020 and "from ip: 127.0.0.1" in untrusted["errmsg"]
    assert fake_wecom.texts("a") == ["hi", "hi"]


def test_duplicate_check_and_the_silent_per_member_cap(fake_wecom):
    base = fake_wecom.url
    tok = token(base)
    send(base, tok, touser="a", text={"content": "同一条"})
    repeat = send(base, tok, touser="a", text={"content": "同一条"}, enable_duplicate_check=1)
    assert repeat["errcode"] == 0 and fake_wecom.texts("a") == ["同一条"]
    fake_wecom.control(member_per_minute=2)
    for i in range(3):
        assert send(base, tok, touser="b", text={"content": f"第{i}条"})["errcode"] == 0
    assert fake_wecom.texts("b") == ["第0条", "第1条"] and len(fake_wecom.dropped) == 1


def test_control_and_records_over_http(fake_wecom):
    base = fake_wecom.url
    httpx.post(
        base + "/_control", json={"latency": 0.2, "fail": [{"api": "gettoken", "errcode": -1}]}
    )
    started = time.monotonic()
    assert httpx.get(base + "/cgi-bin/gettoken").json()["errcode"] == -1
    assert time.monotonic() - started >= 0.2
    httpx.post(base + "/_control", json={"latency": 0})
    tok = token(base)
    send(base, tok, touser="zhangsan", text={"content": "你好"})
    calls = httpx.get(base + "/_calls", params={"api": "message/send"}).json()["calls"]
    assert [c["body"]["touser"] for c in calls] == ["zhangsan"]
    assert httpx.get(base + "/_inbox", params={"user": "zhangsan"}).json()["inbox"]["zhangsan"][0][
        "text"
    ] == {"content": "你好"}
    httpx.delete(base + "/_calls")
    assert fake_wecom.calls == []
    assert httpx.post(base + "/_control", content=b"[]").status_code == 400


def test_uploads_cards_and_robots(fake_wecom):
    base = fake_wecom.url
    tok = token(base)
    up = httpx.post(
        base + "/cgi-bin/media/upload",
        params={"access_token": tok, "type": "file"},
        files={"media": ("台账.xlsx", b"PK..", "application/octet-stream")},
    ).json()
    assert up["errcode"] == 0 and fake_wecom.media[up["media_id"]]["filename"] == "台账.xlsx"
    card = send(
        base, tok, touser="a", msgtype="template_card", template_card={"card_type": "text_notice"}
    )
    assert card["response_code"].startswith("rc_")
    upd = httpx.post(
        base + "/cgi-bin/message/update_template_card",
        params={"access_token": tok},
        json={
            "userids": ["a"],
            "agentid": DEFAULT_AGENT_ID,
            "response_code": card["response_code"],
            "button": {"replace_name": "已确认"},
        },
    ).json()
    assert upd["errcode"] == 0
    chat = httpx.post(
        base + "/cgi-bin/appchat/send",
        params={"access_token": tok},
        json={"chatid": "c1", "msgtype": "text", "text": {"content": "群"}},
    )
    assert chat.json()["errcode"] == 0
    fake_wecom.control(robot_keys=["k1"])
    hook = base + "/cgi-bin/webhook/send"
    assert (
        httpx.post(
            hook, params={"key": "k2"}, json={"msgtype": "text", "text": {"content": "x"}}
        ).json()["errcode"]
        == 93000
    )
    too_long = {"msgtype": "markdown", "markdown": {"content": "长" * 2000}}
    assert httpx.post(hook, params={"key": "k1"}, json=too_long).json()["errcode"] == 40058


def test_chaos_is_random_but_reproducible_and_counted(fake_wecom):
    base = fake_wecom.url
    rates = {45009: 0.2, -1: 0.2, 42001: 0.1, 40014: 0.1}

    def run(seed: int) -> list[int]:
        fake_wecom.reset()
        fake_wecom.set_chaos(Chaos(rates=rates, seed=seed))
        codes = []
        with httpx.Client(base_url=base) as client:  # one client: a new one costs 30 ms
            for i in range(40):
                tok = client.get(
                    "/cgi-bin/gettoken",
                    params={"corpid": DEFAULT_CORP_ID, "corpsecret": DEFAULT_SECRET},
                ).json()["access_token"]
                payload = {"agentid": DEFAULT_AGENT_ID, "touser": f"m{i}", "msgtype": "text",
                           "text": {"content": "通知"}}  # fmt: skip
                answer = client.post(
                    "/cgi-bin/message/send", params={"access_token": tok}, json=payload
                )
                codes.append(answer.json()["errcode"])
        return codes

    first, again, other = run(7), run(7), run(8)
    assert first == again != other
    assert set(first) == {0, 45009, -1, 42001, 40014}
    assert sum(fake_wecom.faults.values()) == sum(1 for c in other if c)
    # A refused call delivered nothing; every call answered 0 delivered once.
    assert sorted(fake_wecom.copies(lambda m: True)) == sorted(
        f"m{i}" for i, c in enumerate(other) if c == 0
    )
    assert [c["fault"] for c in fake_wecom.calls_to("message/send")][:3] == [
        None if c == 0 else str(c) for c in other[:3]
    ]
    with pytest.raises(ValueError, match="more than 1"):
        Chaos(rates={45009: 0.7, -1: 0.6})
    with pytest.raises(ValueError, match="unknown fault"):
        Chaos(rates={"reset": 0.1})


def test_a_timeout_is_a_call_carried_out_and_answered_too_late(fake_wecom):
    base = fake_wecom.url
    tok = token(base)
    fake_wecom.set_chaos(Chaos(rates={TIMEOUT: 1.0}, stall=0.6))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            base + "/cgi-bin/message/send",
            params={"access_token": tok},
            json={"agentid": DEFAULT_AGENT_ID, "touser": "a", "msgtype": "text",
                  "text": {"content": "到了吗"}},
            timeout=0.3,
        )  # fmt: skip
    assert fake_wecom.texts("a") == ["到了吗"] and fake_wecom.held == 1
    time.sleep(0.5)
    assert fake_wecom.held == 0 and fake_wecom.faults == {"timeout": 1}
    # Over HTTP: chaos off, and one stall on cue for the calls a predicate picks (in process).
    httpx.post(base + "/_control", json={"chaos": None})
    fake_wecom.stall("message/send", 0.4, match=lambda body: body.get("touser") == "b")
    fake_wecom.expire_tokens()
    started = time.monotonic()
    assert send(base, tok, touser="b", text={"content": "旧令牌"})["errcode"] == 42001
    tok = token(base)
    assert send(base, tok, touser="a", text={"content": "快"})["errcode"] == 0
    assert time.monotonic() - started < 0.4  # a refused call, or another member's: not held
    assert send(base, tok, touser="b", text={"content": "慢"})["errcode"] == 0
    assert time.monotonic() - started >= 0.4
    httpx.post(
        base + "/_control",
        json={"chaos": {"rates": {"45009": 1.0}, "seed": 1}, "stall": []},
    )
    assert send(base, tok, touser="c")["errcode"] == 45009 and not fake_wecom.received("c")


@pytest.fixture
def live_bot(runtime, settings, session, tmp_path: Path, db_url, fake_wecom):
    small_bureau(session)
    configure_wecom(settings, fake_wecom.url)
    cfg = tmp_path / "mofan.toml"
    cfg.write_text(
        "\n".join(
            [
                "[database]",
                f'url = "{db_url}"',
                "[bot]",
                'channel = "wecom"',
                "[wecom]",
                f'corp_id = "{DEFAULT_CORP_ID}"',
                f"agent_id = {DEFAULT_AGENT_ID}",
                f'secret = "{DEFAULT_SECRET}"',
                f'token = "{DEFAULT_TOKEN}"',
                f'encoding_aes_key = "{DEFAULT_AES_KEY}"',
                f'api_base = "{fake_wecom.url}"',
            ]
        ),
        encoding="utf-8",
    )
    with LiveServer(create_app(runtime, scheduler=False)) as url:
        yield cfg, url


def test_say_click_and_verify_from_the_command_line(live_bot):
    cfg, url = live_bot
    said = mofan(cfg, "fake-wecom", "say", "--as", "张三", "--url", url, "帮助")
    assert said.exit_code == 0, said.output
    assert "您好，张三" in said.output
    clicked = mofan(cfg, "fake-wecom", "click", "--as", "zhangsan", "--menu", "--url", url, "帮助")
    assert clicked.exit_code == 0 and "您好，张三" in clicked.output
    verified = mofan(cfg, "fake-wecom", "verify", "--url", url)
    assert verified.exit_code == 0 and "passed" in verified.output


def test_calls_and_inbox_read_a_running_fake(live_bot, fake_wecom):
    cfg, _ = live_bot
    tok = token(fake_wecom.url)
    send(fake_wecom.url, tok, touser="zhangsan", text={"content": "周五学习"})
    listed = mofan(cfg, "fake-wecom", "calls", "--api", "message/send", "--fake", fake_wecom.url)
    assert listed.exit_code == 0 and '"touser": "zhangsan"' in listed.output
    box = mofan(cfg, "fake-wecom", "inbox", "--as", "zhangsan", "--fake", fake_wecom.url)
    assert box.exit_code == 0 and "周五学习" in box.output


def test_say_without_callback_settings_says_what_to_set(tmp_path, db_url):
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n', encoding="utf-8")
    result = mofan(cfg, "fake-wecom", "say", "--as", "x", "hi")
    assert result.exit_code == 1 and "wecom.token" in result.output
