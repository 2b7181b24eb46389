"""Service settings: environment variables (prefix ``BOT_``) or a ``.env`` file."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOT_", env_file=".env", extra="ignore")

    # --- service -------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # external base URL behind a proxy, e.g. https://csr.example.com
    database_url: str = f"sqlite://{ROOT / 'data' / 'everycsr.sqlite3'}"
    redis_url: str = ""  # empty: in-process stores
    secret_key: str = "change-me-in-production"
    default_locale: Literal["zh_CN", "zh_TW", "en"] = "zh_CN"
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    dedup_ttl_seconds: int = 24 * 3600
    state_ttl_seconds: int = 7 * 24 * 3600
    jieba_cache_dir: str = str(ROOT / "data")

    # --- knowledge matching ------------------------------------------------------------
    # None: the matcher's own evaluated defaults (see bench/RESULTS.md)
    search_answer_threshold: float | None = None
    search_suggest_threshold: float | None = None

    # --- outbox --------------------------------------------------------------------------
    outbox_poll_seconds: float = 0.5
    outbox_max_attempts: int = 8
    outbox_backoff_base_seconds: float = 2.0
    outbox_enabled: bool = True

    # --- WeChat ---------------------------------------------------------------------------
    wechat_token: str = ""
    wechat_appid: str = ""
    wechat_secret: str = ""
    wechat_aes_key: str = ""
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_timestamp_window_seconds: int = 300
    wechat_reply_deadline_seconds: float = 4.0

    # --- Telegram -------------------------------------------------------------------------
    telegram_token: str = ""
    telegram_api_base: str = "https://api.telegram.org"
    telegram_webhook_secret: str = ""
    telegram_bot_username: str = ""
    telegram_polling: bool = False

    # --- SMS ------------------------------------------------------------------------------
    sms_provider: Literal["none", "twilio", "smpp"] = "none"
    sms_api_base: str = "https://api.twilio.com"
    sms_account_sid: str = ""
    sms_auth_token: str = ""
    sms_from: str = ""
    sms_default_region: str = "CN"
    sms_max_segments: int = 4
    sms_rate_per_second: float = 10.0
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    smpp_system_id: str = ""
    smpp_password: str = ""

    # --- demo -------------------------------------------------------------------------------
    demo_staff_password: str = Field(default="demo-pass-2026")

    @property
    def redis_enabled(self) -> bool:
        return bool(self.redis_url)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
