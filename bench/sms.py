"""SMS benchmarks: segmentation throughput/correctness, and SMPP submit rate under a throttle.

1. Segmentation: ``sms_gateway.encoding.segment`` against smpplib's ``gsm.make_parts``
   (the naive baseline: fixed-size byte chunks) on the same mixed corpus, in one run.
   Besides messages/s it counts what the baseline gets wrong: parts that end inside a
   GSM escape pair or a UTF-16 surrogate pair, and texts that do not round-trip (the
   backtick sent as '§').
2. SMPP: the production ESME (``sms_gateway.smpp.SmppEsme``) submits N single-part
   messages to the loopback SMSC (``tests/fakes/smsc.py``, real SMPP 3.4 over TCP)
   which throttles at R msg/s (token bucket holding 100 ms of tokens, at least 2) and answers ESME_RTHROTTLED above
   it. Paced ESME (rate = R, as configured in production) vs the naive baseline
   (unpaced, backing off only when throttled). Achieved rate is measured at the SMSC
   over accepted submits.

Run from the repo root:  python bench/sms.py [--n 500] [--rate 50] [--corpus 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from smpplib import consts as smpp_consts  # noqa: E402
from smpplib import gsm as smpp_gsm  # noqa: E402

from sms_gateway.encoding import ESC, decode_body, reassemble, segment  # noqa: E402
from sms_gateway.smpp import SmppConfig, SmppError, SmppEsme  # noqa: E402
from tests.fakes.smsc import FakeSmsc  # noqa: E402

WORDS_EN = "your data balance is low please top up at any time reply CXLL for details".split()
WORDS_ZH = list("您的流量余额不足请及时充值回复查询详情话费套餐宽带积分兑换")
EXTRA = ["€", "[", "]", "{", "}", "~", "^", "|", "\\", "😀", "𠀀", "`", "👍🏽"]


def corpus(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        kind = rng.random()
        length = rng.choice([40, 150, 170, 320, 500, 900])
        if kind < 0.4:
            words = [rng.choice(WORDS_EN) for _ in range(length // 5)]
            if rng.random() < 0.5:
                words.insert(rng.randrange(len(words)), rng.choice(EXTRA[:9] + ["`"]))
            text = " ".join(words)[:length]
        elif kind < 0.8:
            text = "".join(rng.choice(WORDS_ZH) for _ in range(length // 3))
        else:
            text = "".join(rng.choice(WORDS_ZH + EXTRA) for _ in range(length // 3))
        out.append(text)
    return out


def baseline_parts(text: str) -> tuple[list[bytes], int]:
    parts, encoding, _esm = smpp_gsm.make_parts(text)
    return parts, (8 if encoding == smpp_consts.SMPP_ENCODING_ISO10646 else 0)


def baseline_defects(text: str) -> tuple[int, bool]:
    """(parts broken inside a character, round-trip failure) for smpplib's splitter."""
    parts, dc = baseline_parts(text)
    bodies = [p[6:] for p in parts] if len(parts) > 1 else parts
    broken = 0
    for body in bodies[:-1]:
        if dc == 0 and body.endswith(bytes([ESC])) and not body.endswith(bytes([ESC, ESC])):
            broken += 1
        if dc == 8 and len(body) >= 2 and 0xD8 <= body[-2] <= 0xDB:
            broken += 1
    joined = b"".join(bodies)
    return broken, decode_body(joined, dc) != text


def bench_segmentation(n: int) -> dict[str, object]:
    texts = corpus(n)
    t0 = time.perf_counter()
    ours = [segment(t, i & 0xFF) for i, t in enumerate(texts)]
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in texts:
        baseline_parts(t)
    t_base = time.perf_counter() - t0
    our_bad = sum(1 for t, segs in zip(texts, ours) if reassemble(segs) != t or any(s.tp_ud_octets > 140 for s in segs))
    broken, wrong = 0, 0
    for t in texts:
        b, w = baseline_defects(t)
        broken += b
        wrong += w
    return {
        "messages": n,
        "ours_msgs_per_s": round(n / t_ours),
        "baseline_msgs_per_s": round(n / t_base),
        "ours_over_baseline": round(t_base / t_ours, 3),
        "ours_wrong": our_bad,
        "baseline_parts_split_inside_a_character": broken,
        "baseline_texts_not_round_tripping": wrong,
    }


async def bench_smpp(n: int, rate: float, *, paced: bool) -> dict[str, object]:
    smsc = FakeSmsc(throttle_rate=rate, throttle_burst=max(2.0, rate / 10), send_receipts=False)
    await smsc.start()
    cfg = SmppConfig(
        host="127.0.0.1",
        port=smsc.port,
        system_id="bench",
        password="pw",
        source_addr="10086",
        rate=rate if paced else 1e6,
        window=10,
        throttle_backoff=1.0,
    )
    esme = SmppEsme(cfg)
    await esme.start()
    try:
        assert await esme.wait_bound(5)
        segs = [segment(f"bench message {i}", i) for i in range(n)]
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(n):
            queue.put_nowait(i)

        failed = 0

        async def worker() -> None:
            nonlocal failed
            while not queue.empty():
                i = queue.get_nowait()
                try:
                    await esme.submit(f"8613{i:09d}", segs[i])
                except SmppError:
                    failed += 1

        started = time.monotonic()
        budget = n / rate * 2 + 10  # bounded: the baseline may never finish on its own
        workers = [asyncio.create_task(worker()) for _ in range(20)]
        _done, pending = await asyncio.wait(workers, timeout=budget)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        elapsed = time.monotonic() - started
        arrivals = [s.at for s in smsc.submitted]
        span = max(arrivals) - min(arrivals)
        achieved = (len(arrivals) - 1) / span if span > 0 else float("inf")
        return {
            "mode": "paced (production)" if paced else "unpaced baseline",
            "messages": n,
            "accepted": len(arrivals),
            "throttle_msgs_per_s": rate,
            "achieved_msgs_per_s": round(achieved, 2),
            "share_of_throttle": round(achieved / rate, 4),
            "throttling_errors": smsc.throttled,
            "gave_up": failed,
            "unfinished": queue.qsize() + len(pending),
            "wall_s": round(elapsed, 2),
        }
    finally:
        await esme.stop()
        await smsc.stop()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=500, help="SMPP submits per mode (bounded: ~n/rate seconds)")
    ap.add_argument("--rate", type=float, default=50.0, help="SMSC throttle, msg/s")
    ap.add_argument("--corpus", type=int, default=20000, help="texts for the segmentation benchmark")
    args = ap.parse_args()
    print(
        json.dumps(
            {"machine": platform.machine(), "python": platform.python_version(), "cpus": __import__("os").cpu_count()}
        )
    )
    print(json.dumps({"segmentation": bench_segmentation(args.corpus)}, ensure_ascii=False))
    paced = await bench_smpp(args.n, args.rate, paced=True)
    print(json.dumps({"smpp": paced}))
    base = await bench_smpp(args.n, args.rate, paced=False)
    print(json.dumps({"smpp": base}))
    ok = paced["share_of_throttle"] >= 0.97 and paced["throttling_errors"] == 0  # type: ignore[operator]
    print(json.dumps({"target_met": ok}))


if __name__ == "__main__":
    asyncio.run(main())
