"""Staff login throttling: failures counted per account and per client address, then a lock.

A wrong password (or an unknown username: they look the same from outside) adds one to the
account's count and to the address's count. At ``BOT_LOGIN_MAX_FAILURES_PER_ACCOUNT`` the
account is locked, at ``BOT_LOGIN_MAX_FAILURES_PER_IP`` the address is, until
``BOT_LOGIN_LOCKOUT_SECONDS`` after the first counted failure; while locked even the right
password is refused and no password hash is computed. A success clears the account's count
(not the address's: one good account must not reset a guessing run against the others).
Counts live in the service's :mod:`bot.nonces` store, so every worker agrees (Redis).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bot.nonces import NonceStore
from bot.settings import Settings


def _account_key(username: str) -> str:
    folded = username.strip().casefold()
    return "login:acct:" + hashlib.sha256(folded.encode("utf-8")).hexdigest()[:32]


def _ip_key(ip: str) -> str:
    return "login:ip:" + (ip or "unknown")[:64]


@dataclass(slots=True)
class LoginThrottle:
    store: NonceStore
    max_per_account: int
    max_per_ip: int
    window_seconds: int

    @classmethod
    def from_settings(cls, store: NonceStore, settings: Settings) -> "LoginThrottle":
        return cls(store, settings.login_max_failures_per_account, settings.login_max_failures_per_ip,
                   settings.login_lockout_seconds)

    async def locked(self, username: str, ip: str) -> bool:
        """Whether this username or this address has used up its attempts."""
        if await self.store.count(_ip_key(ip)) >= self.max_per_ip:
            return True
        return bool(username) and await self.store.count(_account_key(username)) >= self.max_per_account

    async def failed(self, username: str, ip: str) -> bool:
        """Count one failure; True when it locked the account or the address."""
        ip_count = await self.store.incr(_ip_key(ip), self.window_seconds)
        acct_count = await self.store.incr(_account_key(username), self.window_seconds) if username else 0
        return ip_count >= self.max_per_ip or acct_count >= self.max_per_account

    async def succeeded(self, username: str) -> None:
        await self.store.reset(_account_key(username))

    @property
    def minutes(self) -> int:
        return max(1, -(-self.window_seconds // 60))
