"""Mofan Bot (模范机关党建助手): the core — config, clock, calendar, storage, router, outbox."""

__version__ = "0.1.0"
