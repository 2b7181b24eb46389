"""Service settings: environment variables (prefix ``BOT_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BOT_", env_file=".env", extra="ignore")

    # --- service -------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # external base URL behind a proxy, e.g. https://csr.example.com
    # "production" (or an https public_url) turns on the start-up refusals of docs/security.md:
    # no default secret key, no demo staff passwords
    env: Literal["development", "production"] = "development"
    # proxies whose X-Forwarded-For / X-Forwarded-Proto are believed: comma-separated addresses
    # or CIDRs (e.g. "127.0.0.1/32,::1/128"); empty = none, the peer address is the client
    trusted_proxies: str = ""
    database_url: str = f"sqlite://{ROOT / 'data' / 'everycsr.sqlite3'}"
    redis_url: str = ""  # empty: in-process stores
    secret_key: str = "change-me-in-production"
    default_locale: Literal["zh_CN", "zh_TW", "en"] = "zh_CN"
    max_body_bytes: int = 64 * 1024
    log_level: str = "INFO"
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"  # the web processes' loop
    dedup_ttl_seconds: int = 24 * 3600  # how long an answered message's answer is kept for retries
    # a message being processed is leased for this long, renewed every third of it while the
    # worker is alive: a retry after a worker died takes the message over once it lapses
    dedup_lease_seconds: float = 6.0
    state_ttl_seconds: int = 7 * 24 * 3600
    # without Redis (one process): how many answered message ids and member states this
    # process keeps at most; past it the oldest go (a late retry is still answered once,
    # from its transcript row)
    memory_dedup_max_entries: int = 50_000
    memory_state_max_entries: int = 100_000
    jieba_cache_dir: str = str(ROOT / "data")

    # --- knowledge matching ------------------------------------------------------------
    # None: the matcher's own evaluated defaults (see bench/RESULTS.md)
    search_answer_threshold: float | None = None
    search_suggest_threshold: float | None = None
    # "e5": add multilingual-e5-small (pip install 'everycsr[semantic]', x86_64 Linux) to the
    # lexical matcher; finds paraphrases that share no words with an item, ~10-15 ms per new question,
    # consulted only when the lexical path is not sure. "auto": e5 where it runs (x86_64 Linux with
    # the package installed), else none
    search_semantic: Literal["auto", "none", "e5"] = "auto"
    # at start and after edits, a leave-one-out pass over the items' own phrasings sets the answer
    # threshold to the lowest keeping >= 95 % precision on this KB (BOT_SEARCH_ANSWER_THRESHOLD pins it)
    search_self_calibrate: bool = True
    # an OpenAI-compatible /v1/embeddings server used instead of the packaged encoder
    embeddings_url: str = ""
    embeddings_model: str = ""
    embeddings_key: str = ""
    embeddings_timeout_seconds: float = 2.0
    kb_variant_auto_accept: int = 3  # distinct members agreeing on a learned question variant; 0 = reviewer only
    kb_refresh_seconds: float = 30.0  # how often each worker applies items changed in the database; 0 = never

    # --- outbox --------------------------------------------------------------------------
    outbox_poll_seconds: float = 0.5
    outbox_max_attempts: int = 8
    outbox_backoff_base_seconds: float = 2.0
    outbox_enabled: bool = True
    # production mode (BOT_REDIS_URL set): taskiq workers; a claimed row not finished within
    # the lease is taken back by the sweeper; a row handed to the queue is not re-kicked
    # within the grace
    outbox_lease_seconds: float = 120.0
    outbox_kick_grace_seconds: float = 10.0
    outbox_queue_concurrency: int = 64

    # --- web chat ----------------------------------------------------------------------
    # an operator's site names its logged-in visitor with user + user_hash (hex HMAC-SHA256 of
    # user under this secret); empty: the web chat knows members only by its own session
    webchat_identity_secret: str = ""
    # origins (scheme://host[:port], comma-separated) whose pages may call the chat API from the
    # browser (CORS, credentials allowed for exactly those); empty: same origin only
    webchat_allowed_origins: str = ""
    # inbound messages per second and burst, per web chat session / operator user and per
    # client address; 0 = no limit (a script cannot flood the pipeline)
    webchat_rate_per_session: float = 1.0
    webchat_burst_per_session: float = 10.0
    webchat_rate_per_ip: float = 5.0
    webchat_burst_per_ip: float = 60.0
    # server-sent event streams (/api/v1/chat/events) open at once per member and per client
    # address, in each process; beyond them 429 (a page opened in many tabs, or a script)
    webchat_events_per_member: int = 5
    webchat_events_per_ip: int = 20
    # a message is streamed once it is this old, so a lower id committing a moment later
    # still goes out first (the page shows ids in order and skips a lower one after)
    webchat_events_grace_seconds: float = 0.3
    # a lower id still queued (not yet sent) holds back the ones after it at most this long
    webchat_events_hold_seconds: float = 5.0
    # rows one event stream sends before it ends (the browser reconnects and resumes by
    # Last-Event-ID): catching up after a long absence is paged, never one unbounded read
    webchat_events_max_rows: int = 2000

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

    # --- rewards: phone-credit top-up provider (empty base: top-ups go to the manual queue) ---
    topup_api_base: str = ""
    topup_secret: str = ""
    topup_order_timeout_minutes: float = 60.0  # no callback this long after submission: ask the provider, settle
    topup_max_attempts: int = 5  # transient submission failures before the order fails and is refunded
    topup_retry_base_seconds: float = 60.0  # backoff before the n-th resubmission: base × 2^(n-1), at most 1 h
    # the operator's account-query API: a business code that looks up the member's own account
    # (CXLL data left, CXYE balance …) is answered in any chat for their verified number;
    # empty: such codes are answered from the knowledge base only
    bss_api_base: str = ""
    bss_secret: str = ""
    bss_timeout_seconds: float = 3.0
    telegram_rate_global: float = 30.0  # messages/s over all chats (Telegram's broadcast limit)
    telegram_rate_per_chat: float = 1.0  # messages/s to one private chat
    telegram_rate_per_group: float = 20 / 60  # messages/s to one group (20 per minute)
    telegram_timeout_seconds: float = 10.0  # one Bot API request
    # an answer is stored in the outbox before Telegram hears "200", then sent inline by the
    # process that computed it; the outbox sends it itself if it is still unsent after this
    telegram_inline_grace_seconds: float = 5.0

    # --- SMS ------------------------------------------------------------------------------
    sms_provider: Literal["none", "twilio", "smpp"] = "none"
    sms_api_base: str = "https://api.twilio.com"
    sms_account_sid: str = ""
    sms_auth_token: str = ""
    sms_from: str = ""
    sms_default_region: str = "CN"
    sms_max_segments: int = 4
    sms_rate_per_second: float = 10.0
    # an SMPP text from the same sender with the same content within this many seconds is the
    # SMSC redelivering it (its deliver_sm_resp was lost), not a new message
    sms_mo_redelivery_window_seconds: float = 45.0
    # with Redis, one SMPP bind per account across all workers: the holder's lease; another
    # worker binds within about this long after the holder died
    smpp_bind_lease_seconds: float = 6.0
    smpp_host: str = "127.0.0.1"
    smpp_port: int = 2775
    smpp_system_id: str = ""
    smpp_password: str = ""

    # --- community Q&A, moderation, agent inbox ---------------------------------------------
    qa_deadline_minutes: float = 30.0  # an open question becomes a ticket after this
    qa_bump_minutes: float = 15.0  # ... and is offered to more helpers once before that
    qa_helpers_per_question: int = 3
    qa_helper_daily_limit: int = 3  # help requests one member receives per day at most
    qa_deadline_check_seconds: float = 30.0
    moderation_warn_freeze_after: int = 2  # warnings before forwarding points are frozen
    moderation_freeze_clean_days: float = 30.0  # a freeze lifts after this long without a new warning
    inbox_first_response_minutes: float = 10.0
    inbox_resolution_minutes: float = 240.0
    # how often the inbox checks SLAs (Prometheus gauges, and a live alert to open pages); 0 = never
    inbox_sla_check_seconds: float = 30.0

    # --- offers and dashboard (community/offers, bot/dashboard) ------------------------------
    service_timezone: str = "Asia/Shanghai"  # quiet hours, daily budgets and caps, dashboard days
    offers_enabled: bool = True
    offers_quiet_hours: str = "22:00-08:00"  # local time, no offers in this span; empty = none
    offers_max_per_member_per_day: int = 1  # offers of any kind one member sees per day
    # each worker keeps the switched-on offers in memory; a save on the offers page reaches every
    # worker at once (fan-out), a change made elsewhere within this many seconds; 0 = read every time
    offers_cache_seconds: float = 5.0
    # how often the KPI process recomputes the /metrics dashboard gauges (bot/dashboard/publisher.py)
    dashboard_refresh_seconds: float = 60.0
    # the KPI process is started by the supervisor (`run --workers N`) or, for a single process,
    # as its child; false: none is started here, run `python -m bot.workers dashboard` yourself
    dashboard_kpi_child: bool = True
    # the database the KPI process reads (a read replica); empty: BOT_DATABASE_URL
    dashboard_database_url: str = ""
    kpi_answer_window_minutes: int = 10  # 👎 / rephrase / hand-on within this marks an answer wrong
    kpi_conversation_gap_minutes: int = 30  # silence that ends a conversation

    # --- staff login (bot/staff): throttling and password hashing ---------------------------
    login_max_failures_per_account: int = 5  # wrong passwords for one username before it is locked
    login_max_failures_per_ip: int = 20  # wrong passwords from one client address before it is locked
    login_lockout_seconds: int = 900  # failures are counted over, and a lock lasts, this long
    password_hash_threads: int = 2  # argon2 checks at once (worker threads); the rest wait their turn

    # --- demo -------------------------------------------------------------------------------
    demo_staff_password: str = Field(default="demo-pass-2026")

    @property
    def redis_enabled(self) -> bool:
        return bool(self.redis_url)

    @property
    def is_production(self) -> bool:
        """BOT_ENV=production, or a public https URL: a real deployment (docs/security.md)."""
        return self.env == "production" or self.public_url.lower().startswith("https://")

    @property
    def webchat_origins(self) -> frozenset[str]:
        return frozenset(o.strip().rstrip("/") for o in self.webchat_allowed_origins.split(",") if o.strip())

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
