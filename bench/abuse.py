"""Abuse benchmark: the reward farms of issue 16, replayed against a running EveryCSR.

Usage: .venv/bin/python bench/abuse.py [--also DIR ...]

Starts EveryCSR (`python -m bot run`, SQLite, sample knowledge base, an operator identity
secret) as a separate process on loopback, like bench/pipeline.py, and replays, through
``/api/v1/chat`` and the public ``/f/<token>`` pages only:

1. accept farm: 15 fresh puppets post a question each and accept one helper's answers;
2. self-opened forward: a sharer opens their own ``/f/<token>`` 10 times with cleared cookies;
3. rating puppets: 12 puppets (each its own browser) open a forward and rate it accurate;
4. vote puppets: 20 puppets vote one helper's answer helpful;
5. ZF to one number: 25 puppets each send ``ZF <code> <victim>``.

Every puppet is its own web chat member: named with ``user`` + ``user_hash`` (HMAC-SHA256 under
``BOT_WEBCHAT_IDENTITY_SECRET``) and with its own aiohttp session, so its own cookie jar
(the server may issue a session cookie per visitor). Per farm it prints the points credited to
the beneficiary, how many are redeemable and how many pending (read from the database
after the farm), against what three honest actions would earn; last, one JSON line.

``--also DIR`` runs the same farms against another checkout (e.g. ``git worktree add
/tmp/before a69fcaf``) in the same run, so before and after are measured alike.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._loadgen import free_port, wait_up  # noqa: E402

SECRET = "abuse-bench-identity-secret"
VICTIM = "13900139999"
KB_QUESTION = "我的流量还剩多少，怎么查？"


@dataclass
class Puppet:
    """One web chat member with its own browser (cookie jar, user agent)."""

    base: str
    user: str
    agent: str
    session: aiohttp.ClientSession = field(init=False)
    refused: int = 0
    n: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # unsafe=True: keep cookies for 127.0.0.1 (aiohttp drops cookies of IP hosts by default)
        self.session = aiohttp.ClientSession(
            headers={"User-Agent": self.agent}, cookie_jar=aiohttp.CookieJar(unsafe=True)
        )

    def ident(self) -> dict[str, str]:
        return {
            "user": self.user,
            "user_hash": hmac.new(SECRET.encode(), self.user.encode(), hashlib.sha256).hexdigest(),
        }

    async def chat(self, **body: Any) -> list[dict[str, Any]]:
        """One message; a patient farmer waits out a 429 (per-session limits) and sends again."""
        self.n += 1
        for _attempt in range(6):
            async with self.session.post(
                f"{self.base}/api/v1/chat", json={**self.ident(), "msg_id": f"{self.user}-{self.n}", **body}
            ) as resp:
                if resp.status == 200:
                    return (await resp.json())["replies"]
                self.refused += 1
                self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                if resp.status != 429:
                    return []
                wait = resp.headers.get("Retry-After", "1")
            await asyncio.sleep(min(5.0, float(wait) if wait.replace(".", "", 1).isdigit() else 1.0))
        return []

    async def close(self) -> None:
        await self.session.close()


def actions(replies: list[dict[str, Any]], prefix: str) -> list[str]:
    return [c["action"] for r in replies for c in r.get("choices", []) if c["action"].startswith(prefix)]


class Db:
    """Read-only look at the server's SQLite file (WAL: safe beside the running server)."""

    def __init__(self, path: Path) -> None:
        self.con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    def cols(self, table: str) -> set[str]:
        return {r[1] for r in self.con.execute(f"PRAGMA table_info({table})")}

    def member(self, user: str) -> int | None:
        row = self.con.execute(
            "SELECT member_id FROM channel_account WHERE channel='web' AND external_id=?", (user,)
        ).fetchone()
        return row[0] if row else None

    def points(self, member_id: int | None) -> dict[str, int]:
        if member_id is None:
            return {"credited": 0, "redeemable": 0, "pending": 0}
        credited = self.con.execute(
            "SELECT COALESCE(SUM(granted + held), 0) FROM gam_ledger_entry WHERE member_id=? AND earning=1 "
            "AND event NOT IN ('release', 'reversal')",
            (member_id,),
        ).fetchone()[0]
        bal = self.con.execute("SELECT balance, held FROM gam_balance WHERE member_id=?", (member_id,)).fetchone() or (
            0,
            0,
        )
        return {"credited": int(credited), "redeemable": int(bal[0]), "pending": int(bal[1])}

    def ratings_counted(self, member_id: int | None) -> float:
        if member_id is None:
            return 0.0
        weight = "weight" if "weight" in self.cols("gam_forward_rating") else "1.0"
        return float(
            self.con.execute(
                f"SELECT COALESCE(SUM({weight}), 0) FROM gam_forward_rating WHERE sharer_id=?", (member_id,)
            ).fetchone()[0]
        )

    def sms_to(self, phone: str) -> int:
        return int(
            self.con.execute(
                "SELECT COUNT(*) FROM outbox_message WHERE channel='sms' AND address=? AND purpose='forward'", (phone,)
            ).fetchone()[0]
        )

    def review_items(self) -> int:
        return int(self.con.execute("SELECT COUNT(*) FROM gam_review_flag WHERE status='open'").fetchone()[0])


def honest_reference() -> dict[str, int]:
    """What three honest actions earn under this tree's rules (the target's yardstick)."""
    from gamification.rules import load_rules

    r = load_rules()
    fwd = r.forward_points(1, True)
    return {
        "accept": 3 * r.events["answer_accepted"].points,
        "forward": 3 * fwd,
        "vote": 3 * r.events["answer_helpful"].points,
        "zf": 3 * fwd,
    }


async def farms(base: str, db: Db, tag: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    made: list[Puppet] = []

    def puppet(name: str, agent: str = "Mozilla/5.0 (Linux; Android 14) Chrome/120") -> Puppet:
        p = Puppet(base, f"{tag}-{name}", agent)
        made.append(p)
        return p

    try:
        # 1. accept farm: 15 puppets accept one helper's answers
        helper = puppet("helper")
        await helper.chat(text="你好")
        for i in range(15):
            p = puppet(f"asker{i}")
            posted = await p.chat(text=f"/ask 第{i}号问题：我家的猫为什么总是半夜唱京剧？")
            code = posted[0]["cards"][0]["title"] if posted and posted[0].get("cards") else ""
            if not code:
                continue
            await helper.chat(action=f"ans:{code}")
            await helper.chat(text=f"猫是夜行动物，白天多陪它玩。（{i}）")
            acc = actions(await p.chat(action=f"q:{code}"), "acc:")
            if acc:
                await p.chat(action=acc[0])
        out["accept_farm"] = {**db.points(db.member(helper.user)), "actions": 15}

        # 4. vote farm (needs an answer): an asker's question, another helper's answer, 20 puppet votes
        helper2, asker = puppet("helper2"), puppet("honest-asker")
        posted = await asker.chat(text="/ask 家里的宽带晚上总是断线怎么办？")
        code = posted[0]["cards"][0]["title"] if posted and posted[0].get("cards") else ""
        await helper2.chat(action=f"ans:{code}")
        await helper2.chat(text="重启光猫，再检查网线是否松动。")
        answer = (actions(await asker.chat(action=f"q:{code}"), "acc:") or ["acc:0"])[0].split(":")[1]
        for i in range(20):
            await puppet(f"voter{i}").chat(action=f"vote:{answer}")
        out["vote_farm"] = {**db.points(db.member(helper2.user)), "actions": 20}

        # 2. self-opened forward: the sharer opens their own link 10 times, cookies cleared
        agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1 sharer"
        sharer = puppet("sharer", agent)
        fw = actions(await sharer.chat(text=KB_QUESTION), "fw:")
        shared = await sharer.chat(action=fw[0]) if fw else []
        url = shared[0]["cards"][0]["url"] if shared and shared[0].get("cards") else ""
        token = url.rsplit("/f/", 1)[-1]
        for _ in range(10):
            async with aiohttp.ClientSession(
                headers={"User-Agent": agent},  # a cleared cookie jar
                cookie_jar=aiohttp.CookieJar(unsafe=True),
            ) as fresh:
                async with fresh.get(f"{base}/f/{token}") as resp:
                    await resp.read()
        out["self_open_farm"] = {**db.points(db.member(sharer.user)), "actions": 10}

        # 3. rating puppets: 12 browsers open a forward and rate it accurate
        sharer2 = puppet("sharer2", "Mozilla/5.0 (Windows NT 10.0) Firefox/121 sharer2")
        fw = actions(await sharer2.chat(text=KB_QUESTION), "fw:")
        shared = await sharer2.chat(action=fw[0]) if fw else []
        url = shared[0]["cards"][0]["url"] if shared and shared[0].get("cards") else ""
        token = url.rsplit("/f/", 1)[-1]
        for i in range(12):
            p = puppet(f"rater{i}", f"Mozilla/5.0 (X11; Linux) Chrome/12{i}.0 rater{i}")
            async with p.session.get(f"{base}/f/{token}") as resp:
                await resp.read()
            async with p.session.post(f"{base}/f/{token}/rate", data={"accurate": "1"}) as resp:
                await resp.read()
        s2 = db.member(sharer2.user)
        out["rating_farm"] = {**db.points(s2), "actions": 12, "ratings_counted": db.ratings_counted(s2)}

        # 5. ZF to one number: 25 puppets each forward an answer to the victim by SMS
        code = "CXLL"
        zf_sender_points = 0
        for i in range(25):
            p = puppet(f"zf{i}")
            await p.chat(text=f"ZF {code} {VICTIM}")
            zf_sender_points += db.points(db.member(p.user))["credited"]
        out["zf_farm"] = {
            "credited": zf_sender_points,
            "redeemable": 0,
            "pending": 0,
            "actions": 25,
            "sms_to_victim": db.sms_to("+86" + VICTIM),
        }
        statuses: dict[int, int] = {}
        for p in made:
            for code, n in p.statuses.items():
                statuses[code] = statuses.get(code, 0) + n
        out["_meta"] = {
            "review_items_open": db.review_items(),
            "refused_requests": sum(p.refused for p in made),
            "refused_by_status": statuses,
        }
    finally:
        await asyncio.gather(*(p.close() for p in made))
    return out


async def run_tree(root: Path, tmp: Path, i: int) -> dict[str, dict[str, Any]]:
    db_path = tmp / f"abuse{i}.sqlite3"
    env = {
        **os.environ,
        "BOT_DATABASE_URL": f"sqlite://{db_path}",
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_JIEBA_CACHE_DIR": str(tmp),
        "BOT_REDIS_URL": "",
        "BOT_WEBCHAT_IDENTITY_SECRET": SECRET,
        "PYTHONPATH": str(root),
        # the web chat's rate limits (where the tree has them) slow a farm down, they do not
        # stop it (a real farm has many addresses and time): switched off, so the bench
        # measures what a farm earns, not how fast it may run
        "BOT_WEBCHAT_RATE_PER_IP": "0",
        "BOT_WEBCHAT_RATE_PER_SESSION": "0",
    }
    subprocess.run(
        [sys.executable, "-m", "bot", "kb", "import", str(ROOT / "community/data/sample_kb.yaml"), "--quiet"],
        env=env,
        cwd=root,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--port", str(port)],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await wait_up(port)
        return await farms(f"http://127.0.0.1:{port}", Db(db_path), f"t{i}")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def table(name: str, result: dict[str, dict[str, Any]], ref: dict[str, int]) -> list[str]:
    refs = {
        "accept_farm": ref["accept"],
        "vote_farm": ref["vote"],
        "self_open_farm": ref["forward"],
        "rating_farm": ref["forward"],
        "zf_farm": ref["zf"],
    }
    lines = [
        f"### {name}",
        "",
        "| farm | actions | credited | redeemable | pending | 3 honest actions | target met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for farm, ref_pts in refs.items():
        r = result[farm]
        met = r["redeemable"] == 0 and r["pending"] <= ref_pts
        extra = ""
        if farm == "rating_farm":
            extra = f" (ratings counted in credibility: {r['ratings_counted']:g})"
        if farm == "zf_farm":
            extra = f" (SMS queued to the victim: {r['sms_to_victim']})"
        lines.append(
            f"| {farm}{extra} | {r['actions']} | {r['credited']} | {r['redeemable']} | {r['pending']} | "
            f"{ref_pts} | {'yes' if met else 'NO'} |"
        )
    lines.append(
        f"\nopen review items: {result['_meta']['review_items_open']}; "
        f"requests refused (4xx/5xx, 429s waited out and sent again): {result['_meta']['refused_requests']} "
        f"{result['_meta']['refused_by_status'] or ''}\n"
    )
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="DIR",
        help="another EveryCSR checkout to replay the farms against in the same run",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="everycsr-abuse-"))
    ref = honest_reference()
    results: list[tuple[Path, dict[str, dict[str, Any]]]] = []
    for i, root in enumerate([ROOT, *map(Path, args.also)]):
        results.append((root, await run_tree(root, tmp, i)))
    for root, result in results:
        print("\n".join(table(f"EveryCSR at {root}", result, ref)))
    now = results[0][1]
    farms_ = [k for k in now if not k.startswith("_")]
    print(
        json.dumps(
            {
                "reference_three_honest": ref,
                "runs": [
                    {
                        "root": str(root),
                        **{k: r[k] for k in farms_},
                        "review_items_open": r["_meta"]["review_items_open"],
                    }
                    for root, r in results
                ],
                "target_met": all(now[k]["redeemable"] == 0 for k in farms_)
                and now["accept_farm"]["pending"] <= ref["accept"]
                and now["vote_farm"]["pending"] <= ref["vote"]
                and now["self_open_farm"]["pending"] <= ref["forward"]
                and now["rating_farm"]["pending"] <= ref["forward"]
                and now["zf_farm"]["pending"] <= ref["zf"],
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
