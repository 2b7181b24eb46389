"""Watched-word screening cost per message, against a naive substring baseline.

``python bench/moderation.py [--rules 300] [--texts 3000]``

Baseline: NFKC + lower + ``pattern in text`` for every word (no CJK folding, no
separator-insensitive matching, no wildcards/regexes, no positions for replacement) —
the cheapest thing that could pass for a filter. The matcher does all of those; the
ratio says what they cost. Both run on the same generated texts in the same process.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
import unicodedata

from community.moderation.matcher import Rule, WatchList

CJK = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经头面公同三已老从动两长知民样现世"


def gen_rules(n: int, rnd: random.Random) -> list[Rule]:
    rules = []
    for i in range(n):
        kind = rnd.choices(["word", "wildcard", "regex"], [0.8, 0.15, 0.05])[0]
        cjk = "".join(rnd.choice(CJK) for _ in range(rnd.randint(2, 4)))
        if kind == "word":
            pat = cjk if rnd.random() < 0.8 else "".join(rnd.choice("abcdefghij") for _ in range(6))
        elif kind == "wildcard":
            pat = cjk[:2] + "*" + "".join(rnd.choice(CJK) for _ in range(2))
        else:
            pat = r"1[3-9]\d{9}" if i % 2 else r"(?:wx|vx)[-_ ]?\w{4,}"
        rules.append(Rule(i + 1, pat, kind, rnd.choice(["flag", "hold", "replace", "warn"])))
    return rules


def gen_texts(n: int, rnd: random.Random) -> list[str]:
    out = []
    for _ in range(n):
        length = rnd.randint(20, 200)
        out.append("".join(rnd.choice(CJK + "，。 abc123") for _ in range(length)))
    return out


def baseline(words: list[str], text: str) -> bool:
    t = unicodedata.normalize("NFKC", text).lower()
    return any(w in t for w in words)


def timed(fn, texts: list[str], repeat: int) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for t in texts:
            fn(t)
        runs.append((time.perf_counter() - start) / len(texts))
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", type=int, default=300)
    ap.add_argument("--texts", type=int, default=3000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    rnd = random.Random(7)
    rules = gen_rules(args.rules, rnd)
    texts = gen_texts(args.texts, rnd)
    t0 = time.perf_counter()
    wl = WatchList(rules)
    build_ms = (time.perf_counter() - t0) * 1000
    words = [r.pattern for r in rules if r.kind == "word"]
    wl.check(texts[0])  # warm OpenCC
    base = timed(lambda t: baseline(words, t), texts, args.repeat)
    ours = timed(wl.check, texts, args.repeat)
    hits = sum(1 for t in texts if wl.check(t).action != "allow")
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"rules={args.rules} texts={args.texts} (20-200 chars) build={build_ms:.1f} ms matched={hits}")
    print(f"baseline substring: {base * 1e6:8.1f} µs/message")
    print(f"watch list        : {ours * 1e6:8.1f} µs/message  ({ours / base:.1f}x baseline)")


if __name__ == "__main__":
    main()
