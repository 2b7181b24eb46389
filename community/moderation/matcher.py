"""Watched-word matching that works for Chinese as well as Latin text.

Text is folded per character (NFKC, case, traditional -> simplified) while keeping a map
back to the original positions, so "法 轮"/"法-輪" still match "法轮" and a replacement
lands on the original characters. Latin words match on word boundaries; CJK words,
wildcards (``*`` any few characters, ``?`` one) match in the text with separators
removed; regexes run on the original text, case-insensitively.

Reviewer-written regexes and wildcards run on RE2 (``google-re2``): matching time is linear
in the text, whatever the pattern, so ``(a+)+$`` cannot stall the service. RE2 has no
back-references or look-arounds; a pattern that needs them is refused on save with a clear
error. Words are literals we escape ourselves, so Python's ``re`` is safe for them.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import re2

from bot.core.i18n import N_
from bot.core.normalize import to_simplified

log = logging.getLogger(__name__)
# strongest first: the decision takes the first action any entry asks for
PRECEDENCE = ("block", "warn", "hold", "flag", "replace")
MAX_PATTERN = 200
_WILD_GAP = 10  # ``*`` spans at most this many (folded, separator-free) characters


class PatternError(ValueError):
    """A watched-word pattern that cannot be used (bad regex, empty, too long).

    ``msgid`` and ``params`` let the reviewer's page say it in the reviewer's language."""

    def __init__(self, msgid: str, **params: Any) -> None:
        self.msgid = msgid
        self.params = params
        super().__init__(msgid % params if params else msgid)


def _re2_options(*, ignore_case: bool) -> "re2.Options":
    opts = re2.Options()
    opts.case_sensitive = not ignore_case
    opts.log_errors = False  # a reviewer's typo is a form error, not a log line
    opts.max_mem = 4 << 20  # a pattern that compiles to a huge program is refused
    return opts


def _re2(pattern: str, *, ignore_case: bool) -> Any:
    """Compile on RE2 (linear time); :class:`PatternError` with RE2's reason otherwise."""
    try:
        return re2.compile(pattern, _re2_options(ignore_case=ignore_case))
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(
            N_(
                "This regular expression cannot be used (%(reason)s). Back-references and "
                "look-arounds are not supported: they can make matching take exponential time."
            ),
            reason=str(reason),
        ) from None


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    pattern: str
    kind: str  # word | wildcard | regex
    action: str
    replacement: str = "***"


@dataclass(slots=True)
class Hit:
    rule_id: int
    pattern: str
    action: str
    start: int  # in the original text
    end: int


@dataclass(slots=True)
class Verdict:
    action: str  # allow | block | warn | hold | flag | replace
    text: str  # the text with "replace" entries applied
    hits: list[Hit] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return self.action in ("allow", "flag", "replace")


@functools.lru_cache(maxsize=65536)
def _fold_char(ch: str) -> str:
    return to_simplified(unicodedata.normalize("NFKC", ch)).casefold()


def _is_sep(ch: str) -> bool:
    return not ch.isalnum()


def _is_cjk(s: str) -> bool:
    return any("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" for c in s)


@dataclass(slots=True)
class Folded:
    compact: str  # folded, separators removed
    cmap: list[int]  # compact index -> original index
    spaced: str  # folded, separators as single spaces
    smap: list[int]


def fold(text: str) -> Folded:
    compact: list[str] = []
    cmap: list[int] = []
    spaced: list[str] = []
    smap: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        for f in folded:
            if _is_sep(f):
                if spaced and spaced[-1] != " ":
                    spaced.append(" ")
                    smap.append(i)
                continue
            compact.append(f)
            cmap.append(i)
            spaced.append(f)
            smap.append(i)
    return Folded("".join(compact), cmap, "".join(spaced), smap)


def fold_pattern(pattern: str) -> str:
    """A word or wildcard literal folded like the text (separators removed)."""
    return "".join(f for ch in pattern for f in _fold_char(ch) if not _is_sep(f) or f in "*?")


def compile_rule(rule: Rule) -> Any:
    """The compiled pattern a rule runs (``finditer`` like ``re``); raises :class:`PatternError`."""
    pat = rule.pattern.strip()
    if not pat or len(pat) > MAX_PATTERN:
        raise PatternError(N_("The pattern must have 1 to %(max)s characters."), max=MAX_PATTERN)
    if rule.kind == "regex":
        return _re2(pat, ignore_case=True)
    if rule.kind == "wildcard":
        folded = fold_pattern(pat)
        parts = [re.escape(p) for p in re.split(r"[*?]", folded)]
        seps = re.findall(r"[*?]", folded)
        body = parts[0]
        for sep, part in zip(seps, parts[1:]):
            body += (f".{{0,{_WILD_GAP}}}?" if sep == "*" else ".") + part
        if not body.replace(".", "").strip("{}0123456789,?"):
            raise PatternError(N_("A wildcard needs some literal text."))
        return _re2(body, ignore_case=False)  # "a*a*a*…b" backtracks 11^k ways on Python's re
    if rule.kind == "word":
        folded = fold_pattern(pat).replace("*", "").replace("?", "")
        if not folded:
            raise PatternError(N_("The word has no letters or digits."))
        if _is_cjk(folded):
            return re.compile(re.escape(folded))
        # Latin words: on word boundaries, separators between words allowed
        words = [re.escape(w) for w in fold(pat).spaced.split() if w]
        return re.compile(r"(?<![^\W_])" + r"\s?".join(words) + r"(?![^\W_])")
    raise PatternError(N_("Unknown kind %(kind)s."), kind=rule.kind)


class WatchList:
    """Compiled rules; build once per change of the list, match many times."""

    def __init__(self, rules: list[Rule]) -> None:
        # (rule, compiled, where it runs: "regex" original text / "spaced" / "compact")
        self.rules: list[tuple[Rule, Any, str]] = []
        # literal CJK words are looked up by their first character (one pass for all of them)
        self._literal: dict[str, list[tuple[str, Rule]]] = {}
        for r in rules:
            try:
                rx = compile_rule(r)
            except PatternError as exc:
                # validated on save; a stale bad row (e.g. a look-around saved before RE2) must not
                # break posting, but it no longer matches: say so where operators look
                log.warning("watched word %s (%r) is not enforced: %s", r.id, r.pattern, exc)
                continue
            literal = fold_pattern(r.pattern) if r.kind == "word" else ""
            if literal and _is_cjk(literal) and "*" not in literal and "?" not in literal:
                self._literal.setdefault(literal[0], []).append((literal, r))
            elif r.kind == "regex":
                self.rules.append((r, rx, "regex"))
            else:
                self.rules.append((r, rx, "spaced" if r.kind == "word" and not _is_cjk(r.pattern) else "compact"))
        self._replacements = {r.id: r.replacement for r in rules}

    def check(self, text: str) -> Verdict:
        if not (self.rules or self._literal) or not text:
            return Verdict("allow", text)
        hits = self._scan(text)
        if not hits:
            return Verdict("allow", text)
        actions = {h.action for h in hits}
        action = next(a for a in PRECEDENCE if a in actions)
        replaced = text
        replace_hits = [h for h in hits if h.action == "replace"]
        for _ in range(3):  # "广广告告" -> "广***告" still reads 广告: replace until it does not
            if not replace_hits:
                break
            replaced = _apply_replacements(replaced, [(h, self._replacement(h.rule_id)) for h in replace_hits])
            replace_hits = [h for h in self._scan(replaced) if h.action == "replace"]
        return Verdict(action, replaced, hits)

    def _scan(self, text: str) -> list[Hit]:
        folded: Folded | None = None
        hits: list[Hit] = []
        if self._literal:
            folded = fold(text)
            compact, cmap = folded.compact, folded.cmap
            for i, ch in enumerate(compact):
                for word, rule in self._literal.get(ch, ()):
                    if compact.startswith(word, i):
                        hits.append(Hit(rule.id, rule.pattern, rule.action, cmap[i], cmap[i + len(word) - 1] + 1))
        for rule, rx, where in self.rules:
            if where == "regex":
                for m in rx.finditer(text):
                    if m.end() > m.start():
                        hits.append(Hit(rule.id, rule.pattern, rule.action, m.start(), m.end()))
                continue
            folded = folded or fold(text)
            hay, imap = (folded.spaced, folded.smap) if where == "spaced" else (folded.compact, folded.cmap)
            for m in rx.finditer(hay):
                if m.end() > m.start():
                    hits.append(Hit(rule.id, rule.pattern, rule.action, imap[m.start()], imap[m.end() - 1] + 1))
        return hits

    def _replacement(self, rule_id: int) -> str:
        return self._replacements.get(rule_id, "***")


def _apply_replacements(text: str, spans: list[tuple[Hit, str]]) -> str:
    if not spans:
        return text
    spans.sort(key=lambda s: (s[0].start, -s[0].end))
    out: list[str] = []
    pos = 0
    for hit, repl in spans:
        if hit.start < pos:  # overlaps an earlier replacement
            continue
        out.append(text[pos : hit.start])
        out.append(repl)
        pos = hit.end
    out.append(text[pos:])
    return "".join(out)
