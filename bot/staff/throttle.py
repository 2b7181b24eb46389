"""Staff login throttling: attempts counted per account and per client address, then a lock.

Every attempt is counted *before* its password is checked (so a script firing a thousand
logins at once gets no more guesses than one firing them in turn): an attempt beyond
``BOT_LOGIN_MAX_FAILURES_PER_ACCOUNT`` for the username, or beyond
``BOT_LOGIN_MAX_FAILURES_PER_IP`` for the client address, is refused without hashing, until
``BOT_LOGIN_LOCKOUT_SECONDS`` after the first counted attempt; while locked even the right
password is refused. A success takes its own attempt back: the account's count is cleared and
the address's count goes down by one, so only failures accumulate. Unknown usernames count
like known ones. Counts live in the service's :mod:`bot.core.nonces` store, so every worker agrees
(Redis).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bot.core.nonces import NonceStore
from bot.core.settings import Settings


def _account_key(username: str) -> str:
    folded = username.strip().casefold()
    return "login:acct:" + hashlib.sha256(folded.encode("utf-8")).hexdigest()[:32]


def _ip_key(ip: str) -> str:
    return "login:ip:" + (ip or "unknown")[:64]


@dataclass(frozen=True, slots=True)
class Attempt:
    allowed: bool  # False: locked, do not check the password
    last: bool  # this attempt used up the account's or the address's allowance


@dataclass(slots=True)
class LoginThrottle:
    store: NonceStore
    max_per_account: int
    max_per_ip: int
    window_seconds: int

    @classmethod
    def from_settings(cls, store: NonceStore, settings: Settings) -> "LoginThrottle":
        return cls(
            store,
            settings.login_max_failures_per_account,
            settings.login_max_failures_per_ip,
            settings.login_lockout_seconds,
        )

    async def attempt(self, username: str, ip: str) -> Attempt:
        """Count this attempt; whether it may go on to the password check."""
        ip_n = await self.store.incr(_ip_key(ip), self.window_seconds)
        acct_n = await self.store.incr(_account_key(username), self.window_seconds)
        allowed = ip_n <= self.max_per_ip and acct_n <= self.max_per_account
        return Attempt(allowed, ip_n == self.max_per_ip or acct_n == self.max_per_account)

    async def succeeded(self, username: str, ip: str) -> None:
        await self.store.reset(_account_key(username))
        await self.store.decr(_ip_key(ip))

    @property
    def minutes(self) -> int:
        return max(1, -(-self.window_seconds // 60))
