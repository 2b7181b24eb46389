"""Weekly, monthly and all-time leaderboards behind one interface.

Ranks are dense on points (equal points share a rank); within a rank the member who
reached the total earlier comes first. Suspended and staff members never appear.
:class:`SqlLeaderboard` computes from the ledger (window functions, SQLite and
PostgreSQL); :class:`RedisLeaderboard` keeps sorted sets updated on every grant, for
large communities. :func:`make_leaderboard` picks by ``settings.redis_url``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from tortoise import connections

from bot.core.point_queries import for_dialect

PERIODS = ("week", "month", "all")
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
TIE_BITS = 2**32  # score = points * 2^32 + (2^32 - 1 - seconds since EPOCH): exact below 2^53


@dataclass(frozen=True)
class Row:
    rank: int
    member_id: int
    points: int


@dataclass
class Standing:
    period: str
    top: list[Row] = field(default_factory=list)
    me: Row | None = None
    around: list[Row] = field(default_factory=list)


class Leaderboard(Protocol):
    async def record(self, member_id: int, points: int, at: datetime) -> None: ...
    async def remove(self, member_id: int) -> None: ...
    async def standing(
        self,
        period: str,
        member_id: int | None = None,
        *,
        limit: int = 10,
        around: int = 2,
        now: datetime | None = None,
    ) -> Standing: ...


def period_start(period: str, now: datetime) -> datetime:
    now = now.astimezone(timezone.utc)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    if period == "all":
        return datetime(1970, 1, 1, tzinfo=timezone.utc)
    raise ValueError(f"unknown period {period!r}")


def _bucket(period: str, now: datetime) -> str:
    start = period_start(period, now)
    return {"week": start.strftime("w%G-%V"), "month": start.strftime("m%Y-%m"), "all": "all"}[period]


# --- SQL ---------------------------------------------------------------------------------------
_PERIOD_SQL = """
WITH t AS (
  SELECT e.member_id AS m, SUM(e.granted) AS p, MAX(e.created_at) AS l
  FROM gam_ledger_entry e JOIN member mb ON mb.id = e.member_id
  WHERE e.earning = ? AND e.created_at >= ? AND mb.status = 'active' AND mb.is_staff = ?
  GROUP BY e.member_id
)"""
_ALL_SQL = """
WITH t AS (
  SELECT b.member_id AS m, b.lifetime AS p, b.last_earned_at AS l
  FROM gam_balance b JOIN member mb ON mb.id = b.member_id
  WHERE b.lifetime > 0 AND mb.status = 'active' AND mb.is_staff = ?
)"""
_RANKED_SQL = """,
r AS (
  SELECT m, p, DENSE_RANK() OVER (ORDER BY p DESC) AS dr,
         ROW_NUMBER() OVER (ORDER BY p DESC, l ASC, m ASC) AS rn
  FROM t WHERE p > 0
)
SELECT m, p, dr, rn FROM r
WHERE rn <= ? OR (rn >= (SELECT rn FROM r WHERE m = ?) - ? AND rn <= (SELECT rn FROM r WHERE m = ?) + ?)
ORDER BY rn"""


def _split(
    rows: list[tuple[int, int, int, int]], member_id: int | None, limit: int
) -> tuple[list[Row], Row | None, list[Row]]:
    top = [Row(int(dr), int(m), int(p)) for m, p, dr, rn in rows if rn <= limit]
    around = [Row(int(dr), int(m), int(p)) for m, p, dr, rn in rows]
    me = next((r for r in around if r.member_id == member_id), None)
    if me is None:
        return top, None, []
    return top, me, around


class SqlLeaderboard:
    """Computed from the ledger on demand: no extra state, fine for small communities."""

    async def record(self, member_id: int, points: int, at: datetime) -> None:
        return None  # the ledger is the source

    async def remove(self, member_id: int) -> None:
        return None  # the query excludes suspended and staff members

    async def standing(
        self,
        period: str,
        member_id: int | None = None,
        *,
        limit: int = 10,
        around: int = 2,
        now: datetime | None = None,
    ) -> Standing:
        conn = connections.get("default")
        dialect = conn.capabilities.dialect
        me = member_id if member_id is not None else -1
        params: list[object]  # flags, the period start, limits
        if period == "all":
            sql, params = _ALL_SQL + _RANKED_SQL, [False]
        else:
            start = period_start(period, now or datetime.now(timezone.utc))
            sql, params = (
                _PERIOD_SQL + _RANKED_SQL,
                [True, start if dialect == "postgres" else start.isoformat(sep=" "), False],
            )
        params += [limit, me, around, me, around]
        _, raw = await conn.execute_query(for_dialect(sql, dialect), params)
        rows = [(r["m"], r["p"], r["dr"], r["rn"]) for r in (dict(x) for x in raw)]
        top, mine, near = _split(rows, member_id, limit)
        return Standing(period, top, mine, near)


# --- Redis ------------------------------------------------------------------------------------------
_RECORD_LUA = """
local member = ARGV[1]
local delta = tonumber(ARGV[2])
local tie = tonumber(ARGV[3])
local B = 4294967296
for i = 1, #KEYS, 3 do
  local z, d, c = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  local s = redis.call('ZSCORE', z, member)
  local old, oldtie = 0, tie
  if s then
    s = tonumber(s)
    old = math.floor(s / B)
    oldtie = s - old * B
    local left = redis.call('HINCRBY', c, string.format('%d', old), -1)
    if left <= 0 then
      redis.call('HDEL', c, string.format('%d', old))
      redis.call('ZREM', d, string.format('%d', old))
    end
  end
  local new = old + delta
  if delta <= 0 then tie = oldtie end
  if new > 0 then
    redis.call('ZADD', z, string.format('%d', new * B + tie), member)
    redis.call('HINCRBY', c, string.format('%d', new), 1)
    redis.call('ZADD', d, new, string.format('%d', new))
  else
    redis.call('ZREM', z, member)
  end
  local ttl = tonumber(ARGV[4 + (i - 1) / 3])
  if ttl > 0 then
    redis.call('EXPIRE', z, ttl); redis.call('EXPIRE', d, ttl); redis.call('EXPIRE', c, ttl)
  end
end
return 1
"""

_STANDING_LUA = """
local z, d = KEYS[1], KEYS[2]
local member, limit, around = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local B = 4294967296
local function row(m, s, pos)
  local p = math.floor(tonumber(s) / B)
  local dr = redis.call('ZREVRANK', d, string.format('%d', p))
  return {m, p, (dr or 0) + 1, pos + 1}
end
local out = {}
local top = redis.call('ZREVRANGE', z, 0, limit - 1, 'WITHSCORES')
for i = 1, #top, 2 do table.insert(out, row(top[i], top[i + 1], (i - 1) / 2)) end
local pos = redis.call('ZREVRANK', z, member)
if pos then
  local lo = math.max(0, pos - around)
  local near = redis.call('ZREVRANGE', z, lo, pos + around, 'WITHSCORES')
  for i = 1, #near, 2 do table.insert(out, row(near[i], near[i + 1], lo + (i - 1) / 2)) end
end
return out
"""


class RedisLeaderboard:
    """Sorted sets per period bucket, plus a set of distinct totals for dense ranks."""

    def __init__(self, redis: Any, prefix: str = "lb") -> None:
        self.redis = redis
        self.prefix = prefix
        self._record = redis.register_script(_RECORD_LUA)
        self._standing = redis.register_script(_STANDING_LUA)

    def keys(self, period: str, now: datetime) -> list[str]:
        base = f"{self.prefix}:{_bucket(period, now)}"
        return [base, base + ":pts", base + ":cnt"]

    @staticmethod
    def tie(at: datetime) -> int:
        return TIE_BITS - 1 - max(0, int((at - EPOCH).total_seconds()))

    async def record(self, member_id: int, points: int, at: datetime) -> None:
        if points == 0:
            return
        keys: list[str] = []
        ttls: list[int] = []
        for period in PERIODS:
            keys += self.keys(period, at)
            ttls.append({"week": 40 * 86400, "month": 100 * 86400, "all": 0}[period])
        await self._record(keys=keys, args=[str(member_id), points, self.tie(at), *ttls])

    async def remove(self, member_id: int, now: datetime | None = None) -> None:
        """Take a member off every current board (suspended, made staff)."""
        at = now or datetime.now(timezone.utc)
        for period in PERIODS:
            z = self.keys(period, at)[0]
            score = await self.redis.zscore(z, str(member_id))
            if score is not None:
                points = int(float(score) // TIE_BITS)
                await self._record(keys=self.keys(period, at), args=[str(member_id), -points, 0, 0])

    async def standing(
        self,
        period: str,
        member_id: int | None = None,
        *,
        limit: int = 10,
        around: int = 2,
        now: datetime | None = None,
    ) -> Standing:
        z, d, _ = self.keys(period, now or datetime.now(timezone.utc))
        raw = await self._standing(keys=[z, d], args=[str(member_id if member_id is not None else ""), limit, around])
        rows = [(int(m), int(p), int(dr), int(rn)) for m, p, dr, rn in raw]
        seen: set[int] = set()
        unique = []
        for r in rows:
            if r[0] not in seen:
                seen.add(r[0])
                unique.append(r)
        unique.sort(key=lambda r: r[3])
        top, mine, near = _split(unique, member_id, limit)
        return Standing(period, top, mine, near)

    async def load(self, period: str, rows: list[tuple[int, int, datetime]], now: datetime) -> None:
        """Bulk load (rebuild from SQL, benchmarks): rows of (member, points, reached at)."""
        z, d, c = self.keys(period, now)
        counts: dict[int, int] = {}
        pipe = self.redis.pipeline(transaction=False)
        for i, (m, p, at) in enumerate(rows, 1):
            pipe.zadd(z, {str(m): p * TIE_BITS + self.tie(at)})
            counts[p] = counts.get(p, 0) + 1
            if i % 10000 == 0:
                await pipe.execute()
        for p, n in counts.items():
            pipe.hincrby(c, str(p), n)
            pipe.zadd(d, {str(p): p})
        await pipe.execute()


def make_leaderboard(redis: Any | None, prefix: str = "lb") -> Leaderboard:
    return RedisLeaderboard(redis, prefix) if redis is not None else SqlLeaderboard()
