"""Config: defaults, the example file, env secrets, and errors that name the key."""

from __future__ import annotations

from datetime import date, time
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_example_file_equals_the_built_in_defaults():
    example = load_settings(ROOT / "config.example.toml", env=False)
    defaults = Settings()
    assert example.model_dump() == defaults.model_dump()


def test_example_documents_every_key():
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    for section, model in Settings.model_fields.items():
        if section in ("source", "cadence", "milestones", "branches"):
            continue
        assert f"[{section}]" in text, section
        for key in model.annotation.model_fields:  # type: ignore[union-attr]
            assert f"\n{key} = " in text or f"\n{key}=" in text, f"{section}.{key} undocumented"


def test_defaults_without_any_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOFAN_CONFIG", raising=False)
    s = load_settings(None, env=False)
    assert s.database.url == "sqlite:///mofan.db" and s.bot.channel == "console"
    assert s.bot.send_window == (time(8, 30), time(18, 0))
    assert [m.due for m in s.milestones] == ["03-31", "04-30", "10-31", "11-30", "12-31"]
    assert s.milestones[1].due_in(2027) == date(2027, 4, 30)


def test_lookup_order_env_then_local_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mofan.toml").write_text(
        '[bot]\nchannel = "console"\n[theme_day]\nday = 20\n', encoding="utf-8"
    )
    assert load_settings(None, env=False).theme_day.day == 20
    other = tmp_path / "other.toml"
    other.write_text("[theme_day]\nday = 9\n", encoding="utf-8")
    monkeypatch.setenv("MOFAN_CONFIG", str(other))
    assert load_settings(None, env=False).theme_day.day == 9
    assert load_settings(tmp_path / "mofan.toml", env=False).theme_day.day == 20


@pytest.mark.parametrize(
    ("toml", "needle"),
    [
        ('[bot]\nchannel = "sms"\n', "bot.channel"),
        ('[bot]\nsend_window = ["18:00", "08:30"]\n', "bot.send_window"),
        ('[bot]\nsend_window = ["25:00", "26:00"]\n', "bot.send_window"),
        ('[bot]\ntimezone = "Mars/Olympus"\n', "bot.timezone"),
        ('[wecom]\nencoding_aes_key = "short"\n', "wecom.encoding_aes_key"),
        ('[database]\nurl = "mysql://x"\n', "database.url"),
        ("[theme_day]\nday = 31\n", "theme_day.day"),
        ('[[milestones]]\nname = "x"\ndue = "02-30"\n', "milestones.0.due"),
        ('[[cadence]]\nkind = "茶话会"\nperiod = "month"\n', "cadence.0.kind"),
        ("[bot]\nchanel = 1\n", "bot.chanel"),
        (
            '[calendar]\nextra_holidays = ["2027-01-04"]\nextra_workdays = ["2027-01-04"]\n',
            "calendar",
        ),
    ],
)
def test_bad_config_names_the_key(tmp_path, toml, needle):
    path = tmp_path / "bad.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(path, env=False)
    assert needle in str(err.value)


def test_not_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[bot\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env=False)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", env=False)


def test_secrets_from_environment_and_files(tmp_path, monkeypatch):
    monkeypatch.setenv("MOFAN_WECOM_SECRET", "s3cret")
    key_file = tmp_path / "aes"
    key_file.write_text("6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt\n", encoding="utf-8")
    monkeypatch.setenv("MOFAN_WECOM_ENCODING_AES_KEY_FILE", str(key_file))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOFAN_CONFIG", raising=False)
    s = load_settings(None)
    assert s.wecom.secret == "s3cret"
    assert s.wecom.encoding_aes_key == "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"


def test_per_branch_cadence_override(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[[cadence]]\nkind = "党课"\nperiod = "quarter"\n'
        'overrides = { "第二党支部" = { period = "month", minimum = 2 } }\n'
        '[branches."第二党支部"]\ntheme_day = 20\n',
        encoding="utf-8",
    )
    s = load_settings(path, env=False)
    assert s.cadence_for("第一党支部")[0].period == "quarter"
    assert (s.cadence_for("第二党支部")[0].period, s.cadence_for("第二党支部")[0].minimum) == (
        "month",
        2,
    )
    assert s.theme_day_for("第二党支部") == 20 and s.theme_day_for("第一党支部") == 15
