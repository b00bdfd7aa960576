"""Test doubles that speak real HTTP: the fake WeCom (``bot.fake_wecom``) on loopback."""
