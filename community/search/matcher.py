"""The knowledge matcher: question text -> ranked knowledge items.

Pipeline of one query (all in memory, pure Python + numpy):

1. ``normalize`` (width/case/traditional folding) and an exact SMS-code
   lookup (confidence 1.0);
2. first stage: four BM25 channels (words, word bigrams, CJK chars/English
   char trigrams, fuzzy pinyin) scored over every indexed *unit* (a title,
   a variant, a learned variant or, weakly, an answer) and fused;
3. the best units are collapsed to items and re-ranked with rapidfuzz
   ratios (text and pinyin) and coverage features (``confidence.rank_score``);
4. ``confidence.confidence`` turns the best score and its margin into a
   calibrated probability of being right; ``decide`` applies the thresholds;
5. with ``MatcherConfig.semantic`` set, a sentence encoder's ranking of the
   question units (``semantic``) adds its best items to the pool, each
   candidate's confidence is refined by how far the encoder puts it ahead
   (``confidence.semantic_confidence``), and the order follows that confidence.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from rapidfuzz import fuzz

from bot.core.pinyin import pinyin_syllables

from . import char_channels
from . import confidence as conf
from .index import BM25Channel, BulkLoad, feed_slots
from bot.core.normalize import normalize
from .semantic import SemanticIndex, load_encoder
from .synonyms import load_synonyms
from .romanized import Homophones
from .tokenize import Analyzed, Analyzer, romanized_syllables
from .ood import is_content_word, out_of_domain
from .types import Decision, KBDoc, Match, Ranking

if TYPE_CHECKING:
    from .remote import RemoteEncoder

__all__ = ["Matcher", "MatcherConfig"]

_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data")
_DEFAULT_USERDICT = os.path.join(_DATA_DIR, "userdict.txt")
_DEFAULT_SYNONYMS = os.path.join(_DATA_DIR, "synonyms.txt")


def _default_path(path: str) -> str | None:
    return path if os.path.exists(path) else None


# From the dev-set sweeps in bench/RESULTS.md. Answer: >= 90 % precision on Banking77, cold
# and after learning, with a margin. Suggest, with the encoder: the lowest threshold that offers
# choices for no more of the questions the KB cannot answer than the lexical 0.2 does
# (averaged over both dev sets); it offers the right item more often.
ANSWER_THRESHOLD = 0.85
SUGGEST_THRESHOLD = 0.2
SEMANTIC_ANSWER_THRESHOLD = 0.75
SEMANTIC_SUGGEST_THRESHOLD = 0.22
# a single option within this share of the answer threshold is answered ("Not this one?"
# beneath): 0.9 of 0.85 = 0.765, where the sample KB's held-out phrasings are ~93 % right
# (bench/RESULTS.md, "Single-option answers")
TENTATIVE_SHARE = 0.9


@dataclass
class MatcherConfig:
    # Confidence thresholds, chosen on the dev sets (see bench/RESULTS.md,
    # "FAQ matching accuracy"): answer aims at >= 90% precision on Banking77.
    # None: the mode's own (ANSWER_/SUGGEST_THRESHOLD, SEMANTIC_* with an encoder).
    answer_threshold: float | None = None
    suggest_threshold: float | None = None
    userdict_path: str | None = field(default_factory=lambda: _default_path(_DEFAULT_USERDICT))
    synonyms_path: str | None = field(default_factory=lambda: _default_path(_DEFAULT_SYNONYMS))
    extra_synonyms: list[list[str]] = field(default_factory=list)
    jieba_tmp_dir: str | None = None
    # a full build of at least this many distinct texts loads the character and pinyin
    # channels in a helper process beside jieba (None or 0: never); see char_channels
    build_helper_min_texts: int | None = 20000
    # a sentence encoder beside the lexical matcher (semantic.ENCODERS; None: off)
    semantic: str | None = None
    # an encoder instance instead (e.g. remote.RemoteEncoder, an embeddings server); sets semantic
    encoder: Any = None
    # True: leave embedding to embed_pending() (run it in a thread); False: embed as items come
    semantic_background: bool = False
    # With an encoder the lexical path answers first (a cascade): what it is sure of, at or
    # above this threshold, needs no encoder. None: ANSWER_THRESHOLD with an encoder, else
    # ``answer_threshold`` (there is one stage). Suggest likewise.
    lexical_answer_threshold: float | None = None
    lexical_suggest_threshold: float | None = None
    # A single option (every other below the suggestion floor) at or above this share of the
    # answer threshold is answered, with "Not this one?" choices beneath (Decision.tentative).
    tentative_share: float = TENTATIVE_SHARE

    def __post_init__(self) -> None:
        if self.encoder is not None and self.semantic is None:
            self.semantic = self.encoder.name
        if self.answer_threshold is None:
            self.answer_threshold = SEMANTIC_ANSWER_THRESHOLD if self.semantic else ANSWER_THRESHOLD
        if self.suggest_threshold is None:
            self.suggest_threshold = SEMANTIC_SUGGEST_THRESHOLD if self.semantic else SUGGEST_THRESHOLD

    def thresholds(self, consulted: bool) -> tuple[float, float]:
        """(answer, suggest) thresholds of the stage that decided: the encoder's when it was
        consulted, else the lexical path's."""
        assert self.answer_threshold is not None and self.suggest_threshold is not None  # __post_init__
        answer, suggest = float(self.answer_threshold), float(self.suggest_threshold)
        if consulted or not self.semantic:
            return answer, suggest
        return (
            ANSWER_THRESHOLD if self.lexical_answer_threshold is None else self.lexical_answer_threshold,
            SUGGEST_THRESHOLD if self.lexical_suggest_threshold is None else self.lexical_suggest_threshold,
        )


# First-stage channel weights and BM25 parameters (tuned on the dev sets).
CHANNEL_WEIGHTS: dict[str, float] = {"w": 1.0, "b": 0.3, "c": 1.0, "p": 0.5}
BM25_PARAMS: dict[str, tuple[float, float]] = {
    "w": (1.2, 0.5),
    "b": (1.2, 0.5),
    "c": (1.2, 0.5),
    "p": (1.2, 0.5),
}
UNIT_WEIGHT = {"title": 1.0, "variant": 1.0, "learned": 1.0, "answer": 0.3}
FIRST_STAGE_UNITS = 60  # units kept from the first stage
RERANK_ITEMS = 20  # items re-ranked with rapidfuzz/coverage features
UNITS_PER_ITEM = 3  # best units of one item looked at in the re-rank
LOCALE_PENALTY = 1.0  # logit subtracted for an item of another language
VERBATIM_CONFIDENCE = 0.95  # floor for a query identical to a unique KB question
SUGGEST_FLOOR = 0.5  # suggestions besides the first need >= floor*suggest
DECISION_CACHE = 8192  # FAQ traffic repeats itself: top matches remembered per index state
LEXICAL_MEMO = 256  # lexical rankings between needs_query_vector and decide, while messages interleave
ANY_VERSION = -1  # a decision the lexical path was sure of: new vectors cannot change it
SEMANTIC_SLOTS = 40  # units taken from the encoder's ranking
SEMANTIC_ITEMS = 10  # items of those added to the re-ranked pool


def _family(locale: str | None) -> str | None:
    if not locale:
        return None
    loc = locale.lower().replace("-", "_")
    return "zh" if loc.startswith("zh") else loc.split("_")[0]


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """A build allocates millions of small lists and dicts that all stay alive until it
    ends; the cyclic collector would walk them again and again (~15 % of a 100k build)
    and free nothing.  Process-wide, so only the outermost pause re-enables it.

    Afterwards everything alive is frozen out of the collector (``gc.freeze``): the index,
    jieba's dictionary and the loaded code live until the next build, and a full collection
    walking them took ~250 ms with the sample knowledge base, a stall every few seconds
    under load that set the answer path's p99. Frozen objects are still freed by reference
    counting when a later build replaces them."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.freeze()


class _Unit:
    __slots__ = ("item_id", "kind", "text", "pinyin")

    def __init__(self, item_id: int, kind: str, text: str, pinyin: str) -> None:
        self.item_id = item_id
        self.kind = kind
        self.text = text
        self.pinyin = pinyin


class _Item:
    __slots__ = ("doc", "slots", "learned", "family")

    def __init__(self, doc: KBDoc, learned: list[str]):
        self.doc = doc
        self.slots: list[int] = []
        self.learned = learned
        self.family = _family(doc.locale)


class Matcher:
    def __init__(self, config: MatcherConfig | None = None) -> None:
        self.config = config or MatcherConfig()
        syn: list[list[str]] = []
        if self.config.synonyms_path:
            syn.extend(load_synonyms(self.config.synonyms_path))
        syn.extend(list(g) for g in self.config.extra_synonyms)
        self._analyzer = Analyzer(
            userdict_path=self.config.userdict_path,
            synonyms=syn,
            jieba_tmp_dir=self.config.jieba_tmp_dir,
        )
        encoder = self.config.encoder
        if encoder is None and self.config.semantic:
            encoder = load_encoder(self.config.semantic)
        self._semantic = SemanticIndex(encoder) if encoder is not None else None
        self._reset()

    # ---------------------------------------------------------- building
    def _reset(self) -> None:
        self._channels = {ch: BM25Channel(*BM25_PARAMS[ch]) for ch in Analyzer.CHANNELS}
        self._units: list[_Unit | None] = []
        self._cap = 0
        self._unit_w = np.zeros(0, dtype=np.float64)
        self._unit_item = np.zeros(0, dtype=np.int64)
        self._items: dict[int, _Item] = {}
        self._zh_items = 0  # items in Chinese: romanised pinyin input can match only those
        self._homophone_table: Homophones | None = None
        # needs_query_vector's, for decide
        self._lexical_memo: OrderedDict[tuple[str, str | None, int, int], Ranking] = OrderedDict()
        self._sms: dict[str, int] = {}
        self._decisions: OrderedDict[tuple[str, str | None], tuple[int, Ranking]] = OrderedDict()
        self._generation = getattr(self, "_generation", 0) + 1
        if self._semantic is not None:
            self._semantic.reset()

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = max(need, self._cap * 2, 64)
        w = np.zeros(cap, dtype=np.float64)
        w[: self._cap] = self._unit_w
        it = np.full(cap, -1, dtype=np.int64)
        it[: self._cap] = self._unit_item
        self._unit_w, self._unit_item, self._cap = w, it, cap
        if self._semantic is not None:
            self._semantic.grow(cap)

    @property
    def semantic_ready(self) -> bool:
        """An encoder is on and has vectors."""
        return self._encoder_ready

    def forget_decisions(self) -> None:
        """Drop remembered matches (thresholds changed)."""
        self._decisions.clear()

    def _changed(self) -> None:
        """Forget remembered matches; a search that overlapped the change won't be kept."""
        self._generation += 1
        self._decisions.clear()

    def _add_unit(self, item: _Item, kind: str, text: str) -> None:
        self._changed()
        norm = normalize(text)
        if not norm:
            return
        for s in item.slots:  # same text already indexed for this item
            u = self._units[s]
            if u is not None and u.text == norm and u.kind != "answer":
                return
        a = self._analyzer.analyze(norm)
        # slot numbers are never reused before the next build (see index.py)
        slot = len(self._units)
        self._units.append(None)
        self._grow(slot + 1)
        for ch in Analyzer.CHANNELS:
            self._channels[ch].add(slot, a.terms[ch])
        self._units[slot] = _Unit(item.doc.id, kind, a.text, a.pinyin)
        self._unit_w[slot] = UNIT_WEIGHT[kind]
        self._unit_item[slot] = item.doc.id
        item.slots.append(slot)
        if self._semantic is not None and kind != "answer":
            self._semantic.assign(slot, a.text)
            if not self.config.semantic_background and not self._semantic.remote:
                self._semantic.embed_pending()

    def _drop_slots(self, item: _Item) -> None:
        self._changed()
        for s in item.slots:
            u = self._units[s]
            if u is None:
                continue
            for channel in self._channels.values():
                channel.remove(s)
            if self._semantic is not None:
                self._semantic.drop(s)
            self._units[s] = None
            self._unit_w[s] = 0.0
            self._unit_item[s] = -1
        item.slots = []

    def _index_item(self, doc: KBDoc, learned: list[str]) -> None:
        item = _Item(doc, learned)
        self._items[doc.id] = item
        self._zh_items += item.family == "zh"
        self._add_unit(item, "title", doc.title)
        for v in doc.variants:
            self._add_unit(item, "variant", v)
        for v in learned:
            self._add_unit(item, "learned", v)
        if doc.answer:
            self._add_unit(item, "answer", doc.answer)
        if doc.sms_code:
            code = normalize(doc.sms_code).replace(" ", "")
            if code:
                self._sms[code] = doc.id

    def build(self, docs: Iterable[KBDoc]) -> None:
        """Full (re)build; learned variants of items that are still present
        are kept.  Each distinct text is analysed once and every channel is
        loaded in one vectorised pass (``BulkLoad`` + ``BM25Channel.load``); a large build
        loads the character and pinyin channels in a helper process meanwhile
        (``char_channels``)."""
        with _gc_paused():
            self._build(docs)

    def _build(self, docs: Iterable[KBDoc]) -> None:
        learned = {i: it.learned for i, it in self._items.items()}
        latest: dict[int, KBDoc] = {}
        for doc in docs:  # a repeated id: the last one wins, as with upsert
            latest.pop(doc.id, None)
            latest[doc.id] = doc
        self._reset()
        plan: list[tuple[_Item, str, str]] = []  # (item, kind, normalised text)
        for doc in latest.values():
            item = _Item(doc, learned.get(doc.id, []))
            self._items[doc.id] = item
            self._zh_items += item.family == "zh"
            seen: set[str] = set()
            phrasings = [("title", doc.title)]
            phrasings += [("variant", v) for v in doc.variants]
            phrasings += [("learned", v) for v in item.learned]
            if doc.answer:
                phrasings.append(("answer", doc.answer))
            for kind, text in phrasings:
                norm = normalize(text)
                if not norm or norm in seen:
                    continue
                if kind != "answer":
                    seen.add(norm)
                plan.append((item, kind, norm))
            if doc.sms_code:
                code = normalize(doc.sms_code).replace(" ", "")
                if code:
                    self._sms[code] = doc.id
        text_no: dict[str, int] = {}  # distinct texts are analysed once
        slot_text = [text_no.setdefault(norm, len(text_no)) for _i, _k, norm in plan]
        an = self._analyzer
        texts = [an.prepare(t) for t in text_no]
        chars = char_channels.start(texts, slot_text, helper_min_texts=self.config.build_helper_min_texts)
        loads = {"w": BulkLoad(), "b": BulkLoad()}
        # word_terms() -> (w, b, words, has_cjk)
        feed_slots(list(loads.values()), slot_text, lambda j: an.word_terms(texts[j])[:2])
        for ch, ld in loads.items():
            self._channels[ch].load(ld.result())
        char_slots, pinyins = chars()
        for ch, slots in char_slots.items():
            self._channels[ch].load(slots)
        n = len(plan)
        self._grow(n)
        units: list[_Unit | None] = []
        for slot, ((item, kind, _norm), j) in enumerate(zip(plan, slot_text)):
            units.append(_Unit(item.doc.id, kind, texts[j], pinyins[j]))
            item.slots.append(slot)
        self._units = units
        if n:
            self._unit_w[:n] = [UNIT_WEIGHT[k] for _i, k, _n in plan]
            self._unit_item[:n] = [it.doc.id for it, _k, _n in plan]
        if self._semantic is not None:
            questions = [(slot, u.text) for slot, u in enumerate(units) if u is not None and u.kind != "answer"]
            for slot, text in questions:
                self._semantic.assign(slot, text)
            self._semantic.forget_unused({text for _slot, text in questions})
            if not self.config.semantic_background and not self._semantic.remote:
                self._semantic.embed_pending()
        if self._zh_items:
            pinyin_syllables()  # romanised input's table (~0.5 s once per process), here in the build's thread
        self._changed()  # searches that ran while the index was half built are not remembered

    def _unindex(self, item_id: int) -> _Item | None:
        item = self._items.pop(item_id, None)
        if item is None:
            return None
        self._zh_items -= item.family == "zh"
        self._drop_slots(item)
        self._sms = {c: i for c, i in self._sms.items() if i != item_id}
        return item

    def upsert(self, doc: KBDoc) -> None:
        """Add or replace one item incrementally (its learned variants stay)."""
        old = self._unindex(doc.id)
        self._index_item(doc, old.learned if old else [])

    def remove(self, item_id: int) -> None:
        self._unindex(item_id)

    def add_variant(self, item_id: int, text: str) -> None:
        """Index a learned question phrasing for an item (e.g. a question a
        member confirmed was answered by it).  Unknown items raise KeyError."""
        item = self._items[item_id]
        norm = normalize(text)
        if not norm or norm in item.learned:
            return
        item.learned.append(norm)
        self._add_unit(item, "learned", norm)

    def n_questions(self, item_id: int, skip: frozenset[int] = frozenset()) -> int:
        """How many question phrasings (title, variants, learned) an item has (the slots in
        ``skip``, held out by a calibration pass, not counted)."""
        item = self._items[item_id]
        return sum(1 for s in item.slots if s not in skip and (u := self._units[s]) is not None and u.kind != "answer")

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    # ---------------------------------------------------------- querying
    def _analyze(self, text: str) -> Analyzed:
        """The question's terms. Latin letters that spell pinyin syllables ("liuliang zenme
        cha") and are mostly not words of the knowledge base are read as romanised Chinese:
        spelled back in the knowledge base's own words (流量怎么查) and analysed as such, so
        every channel and the fitted models apply as to a question typed in characters."""
        a = self._analyzer.analyze(text)
        if a.has_cjk or not a.words or not self._zh_items:
            return a
        syllables = romanized_syllables(a.text)
        if syllables is None:
            return a
        w = self._channels["w"]
        if sum(1 for word in a.words if w.doc_freq(word)) * 2 >= len(a.words):
            return a
        hanzi = self._homophones().spell(syllables)
        if not hanzi:
            return a
        b = self._analyzer.analyze(hanzi)
        b.romanized = True
        return b

    def _homophones(self) -> Homophones:
        """The knowledge base's words by their fuzzy pinyin, made on the first romanised
        question after a change (a few ms per 10,000 words)."""
        h = self._homophone_table
        if h is None or h.generation != self._generation:
            h = self._homophone_table = Homophones.from_channels(
                self._channels["w"], self._channels["c"], self._generation
            )
        return h

    def _candidates(
        self,
        text: str,
        locale: str | None,
        qvec: np.ndarray | None = None,
        skip: frozenset[int] = frozenset(),
    ) -> tuple[list[tuple[float, int, tuple[float, ...]]], Analyzed | None]:
        """Re-ranked candidates: list of (rank_score, item_id, features), best first. With a
        query vector, the encoder's best items join the pool (their lexical features may be
        weak: their confidence in :meth:`_ranked` gives them their place). Slots in ``skip``
        (held out by a calibration pass) take no part."""
        if not self._items:
            return [], None
        a = self._analyze(text)
        scores = np.zeros(self._cap, dtype=np.float64)
        for ch, w in CHANNEL_WEIGHTS.items():
            if w:
                self._channels[ch].score_into(scores, a.terms[ch], w)
        scores *= self._unit_w
        if skip:
            scores[list(skip)] = 0.0
        nz = np.flatnonzero(scores)
        semantic_slots = [s for s in self._semantic_slots(qvec) if s not in skip]
        if nz.size == 0 and not semantic_slots:
            return [], a
        if nz.size > FIRST_STAGE_UNITS:
            part = np.argpartition(scores[nz], -FIRST_STAGE_UNITS)[-FIRST_STAGE_UNITS:]
            nz = nz[part]
        order = nz[np.argsort(-scores[nz], kind="stable")]
        per_item: dict[int, list[int]] = {}
        for s in order.tolist():
            iid = int(self._unit_item[s])
            lst = per_item.get(iid)
            if lst is None:
                if len(per_item) >= RERANK_ITEMS:
                    continue
                per_item[iid] = [s]
            elif len(lst) < UNITS_PER_ITEM:
                lst.append(s)
        added = 0
        for s in semantic_slots:
            iid = int(self._unit_item[s])
            lst = per_item.get(iid)
            if lst is None:
                if added >= SEMANTIC_ITEMS:
                    continue
                added += 1
                per_item[iid] = [s]
            elif s not in lst and len(lst) <= UNITS_PER_ITEM:
                lst.append(s)  # the unit the encoder found is looked at too
        ch_c, ch_w = self._channels["c"], self._channels["w"]
        qt_c = ch_c.query_tids(a.terms["c"])
        qt_w = ch_w.query_tids(a.terms["w"])
        qm_c = ch_c.query_mass(a.terms["c"])
        qm_w = ch_w.query_mass(a.terms["w"])
        qfam = _family(locale)
        out: list[tuple[float, int, tuple[float, ...]]] = []
        for iid, slots in per_item.items():
            best: tuple[float, tuple[float, ...]] | None = None
            for s in slots:
                u = self._units[s]
                assert u is not None  # a dropped slot scores 0 and has no vector: never a candidate
                terms_c, terms_w = ch_c.slot_tids(s), ch_w.slot_tids(s)
                f: tuple[float, ...] = (
                    float(scores[s]),
                    fuzz.ratio(a.text, u.text) / 100.0,
                    fuzz.ratio(a.pinyin, u.pinyin) / 100.0 if a.has_cjk else 0.0,
                    ch_c.coverage(qt_c, terms_c),
                    ch_w.coverage(qt_w, terms_w),
                    ch_c.query_coverage(qm_c, terms_c),
                    ch_w.query_coverage(qm_w, terms_w),
                )
                r = conf.rank_score(f)
                if u.kind == "answer":
                    r -= 2.0
                if best is None or r > best[0]:
                    best = (r, f)
            assert best is not None  # every item here has a slot
            r, f = best
            if qfam and self._items[iid].family != qfam:
                r -= LOCALE_PENALTY
            out.append((r, iid, f))
        out.sort(key=lambda x: -x[0])
        return out, a

    # ---------------------------------------------------------- semantic
    @property
    def semantic_pending(self) -> int:
        """Question texts still waiting for their vectors."""
        return self._semantic.pending if self._semantic is not None else 0

    def embed_pending(self) -> int:
        """Embed what is waiting (blocking, thread-safe: run it in a worker thread); returns
        how many texts were embedded (0 once :meth:`close` was called)."""
        return self._semantic.embed_pending() if self._semantic is not None else 0

    def close(self) -> None:
        """Stop embedding: a running :meth:`embed_pending` returns after its current batch."""
        if self._semantic is not None:
            self._semantic.close()

    @property
    def encoder_remote(self) -> bool:
        return self._semantic is not None and self._semantic.remote

    async def aembed_pending(self) -> int:
        """:meth:`embed_pending` for an embeddings server (on the event loop)."""
        return await self._semantic.aembed_pending() if self._semantic is not None else 0

    async def aquery_vector(self, text: str) -> np.ndarray | None:
        """A question's vector from the embeddings server, None when it cannot help now."""
        norm = normalize(text)
        if self._semantic is None or not norm:
            return None
        encoder = cast("RemoteEncoder", self._semantic.encoder)  # only an embeddings server is asked here
        return await encoder.aembed_query(self._analyzer.prepare(norm))

    def query_vector(self, text: str) -> np.ndarray | None:
        """The encoder's vector of a question (blocking, ~10 ms; thread-safe), None without
        an encoder or for an empty text."""
        norm = normalize(text)
        if self._semantic is None or not norm or self._semantic.remote:
            return None
        return self._semantic.embed_query(self._analyzer.prepare(norm))

    def _semantic_slots(self, qvec: np.ndarray | None) -> list[int]:
        if qvec is None or self._semantic is None:
            return []
        return [s for s, _cos in self._semantic.top_slots(qvec, len(self._units), SEMANTIC_SLOTS)]

    def encoder_first(self, qvec: np.ndarray, skip: frozenset[int] = frozenset()) -> tuple[int, float] | None:
        """The item the encoder puts first for a vector, and its cosine (None without vectors)."""
        if self._semantic is None:
            return None
        for s, cos in self._semantic.top_slots(qvec, len(self._units), len(skip) + 1):
            if s not in skip:
                return int(self._unit_item[s]), cos
        return None

    def _item_cosines(
        self, qvec: np.ndarray, item_id: int, skip: frozenset[int] = frozenset()
    ) -> tuple[float, float] | None:
        """The item's best cosine to the query among its question phrasings, in each of the
        encoder's views (as questions, as passages); None while none has a vector."""
        assert self._semantic is not None  # asked only with a query vector
        best: tuple[float, float] | None = None
        for s in self._items[item_id].slots:
            if s in skip:
                continue
            c = self._semantic.similarities(qvec, s)  # None for answers and texts not embedded yet
            if c is not None:
                best = c if best is None else (max(best[0], c[0]), max(best[1], c[1]))
        return best

    def _ranked(
        self,
        norm: str,
        locale: str | None,
        qvec: np.ndarray | None,
        limit: int | None = None,
        skip: frozenset[int] = frozenset(),
    ) -> tuple[list[tuple[int, float, tuple[float, ...], int, tuple[float, ...] | None]], list[float], Analyzed | None]:
        """Candidates in answer order with their confidence: [(item_id, p, features, lexical
        position, encoder features)] and the re-ranker's scores (best first).

        Without an encoder the order is the re-ranker's, and only the first ``limit`` get a
        confidence (each costs a softmax over all candidates). With one, the candidates are
        ordered by a fused score of their lexical confidence and their cosines in the encoder's
        two views (``confidence.semantic_rank_score``), and every candidate's lexical
        confidence is refined by the encoder's evidence (``confidence.semantic_confidence``),
        never rising down the list. Shared with the fitting script, so both compute the same
        thing."""
        cands, a = self._candidates(norm, locale, qvec, skip)
        ranks = [c[0] for c in cands]
        if qvec is None and limit is not None:
            cands = cands[:limit]
        p = [
            conf.confidence(conf.conf_features(ranks, i, f, a, self.n_questions(iid, skip)))
            for i, (_r, iid, f) in enumerate(cands)
        ]
        sem: list[tuple[float, ...] | None] = [None] * len(cands)
        order: list[int] | range = range(len(cands))
        if qvec is not None and cands:
            views = [self._item_cosines(qvec, iid, skip) for _r, iid, _f in cands]
            known = [i for i, v in enumerate(views) if v is not None]
            if known:
                cos = {i: cast(tuple[float, float], views[i]) for i in known}  # known: not None
                fused = {i: conf.semantic_rank_score(p[i], *cos[i]) for i in known}
                by_cos = sorted(known, key=lambda i: -cos[i][0])
                by_pcos = sorted(known, key=lambda i: -cos[i][1])
                for i in known:
                    other: float | None = None
                    other_p: float | None = None
                    if len(known) > 1:
                        other = cos[by_cos[1]][0] if i == by_cos[0] else cos[by_cos[0]][0]
                        other_p = cos[by_pcos[1]][1] if i == by_pcos[0] else cos[by_pcos[0]][1]
                    sem[i] = feats = conf.semantic_features(
                        p[i],
                        cos[i][0],
                        other,
                        cos[i][1],
                        other_p,
                        encoder_first=i == by_cos[0],
                        passage_first=i == by_pcos[0],
                        lexical_first=i == 0,
                    )
                    assert feats is not None  # None only without a cosine, and this one is known
                    p[i] = conf.semantic_confidence(feats)
                # the fused score orders the candidates (those without vectors yet after them,
                # by their lexical confidence); confidences never rise down the list
                order = sorted(range(len(cands)), key=lambda i: (i not in fused, -fused.get(i, p[i]), i))
                cap = 1.0
                for i in order:
                    p[i] = cap = min(p[i], cap)
        return [(cands[i][1], p[i], cands[i][2], i, sem[i]) for i in order], ranks, a

    def question_units(self, item_id: int) -> list[tuple[int, str]]:
        """(slot, normalised text) of an item's question phrasings: what a calibration pass
        holds out one at a time (``skip``)."""
        return [
            (s, u.text) for s in self._items[item_id].slots if (u := self._units[s]) is not None and u.kind != "answer"
        ]

    def unit_vector(self, slot: int) -> np.ndarray | None:
        """The encoder's vector of an indexed phrasing (None without one)."""
        return self._semantic.vector(slot) if self._semantic is not None else None

    @property
    def item_ids(self) -> list[int]:
        return list(self._items)

    def item_locale(self, item_id: int) -> str:
        return self._items[item_id].doc.locale

    def search(
        self,
        text: str,
        *,
        locale: str | None = None,
        limit: int = 5,
        qvec: np.ndarray | None = None,
        skip: frozenset[int] = frozenset(),
        encoder: bool = True,
    ) -> list[Match]:
        """Best matches, best first. With an encoder, ``qvec`` is the question's vector
        (:meth:`query_vector`); if not given it is computed here. ``skip``: slots held out
        (calibration); ``encoder=False``: the lexical path alone."""
        return list(self._search(text, locale, limit, qvec, skip, encoder).matches)

    def _search(
        self,
        text: str,
        locale: str | None,
        limit: int,
        qvec: np.ndarray | None,
        skip: frozenset[int] = frozenset(),
        encoder: bool = True,
    ) -> Ranking:
        norm = normalize(text)
        if not norm or limit <= 0:
            return Ranking((), False, 0.0, 0, 0)
        if not encoder:
            qvec = None
        elif qvec is None and self._semantic is not None and self._semantic.has_vectors and not self._semantic.remote:
            qvec = self._semantic.embed_query(self._analyzer.prepare(norm))
        result: list[Match] = []
        code_hit = self._sms.get(norm.replace(" ", ""))
        if code_hit is not None:
            d = self._items[code_hit].doc
            result.append(Match(d.id, d.title, 1.0, d.locale))
        ranked, ranks, a = self._ranked(norm, locale, qvec, limit + 1, skip)  # + 1: the code hit is skipped
        explained = 0.0
        for pos, (iid, p, f, i, _sem) in enumerate(ranked):
            if i < 3:
                explained = max(explained, f[5], f[6])
            if len(result) >= limit:
                continue
            if iid == code_hit:
                continue
            if f[1] >= 0.999 and pos == 0 and i == 0 and (len(ranks) == 1 or ranks[0] > ranks[1]):
                p = max(p, VERBATIM_CONFIDENCE)  # the very question is in the KB
            d = self._items[iid].doc
            result.append(Match(d.id, d.title, round(p, 6), d.locale))
        if code_hit is not None:
            explained = 1.0
        words = [word for word in (a.words if a is not None else []) if is_content_word(word)]
        w = self._channels["w"]
        known = sum(1 for word in words if w.doc_freq(word))
        return Ranking(tuple(result), qvec is not None, explained, known, len(words))

    def assess(
        self, text: str, *, locale: str | None = None, qvec: np.ndarray | None = None, limit: int = 3
    ) -> Ranking:
        """The cascade: the lexical path's ranking when it is sure (at or above the lexical
        answer threshold) or when there is no encoder; else the encoder is consulted (with
        ``qvec`` when given, else computed here, blocking) and its ranking stands."""
        lexical = self._lexical(text, locale, limit)
        if not self._encoder_ready or self._lexical_sure(lexical):
            return lexical
        assert self._semantic is not None  # _encoder_ready
        if qvec is None and self._semantic.remote:  # the server could not help: lexical, not remembered
            return replace(lexical, fallback=True)
        return replace(self._search(text, locale, limit, qvec), lexical=lexical.matches)

    @property
    def _encoder_ready(self) -> bool:
        return self._semantic is not None and self._semantic.has_vectors

    def _lexical_sure(self, r: Ranking) -> bool:
        return bool(r.matches) and r.matches[0].score >= self.config.thresholds(False)[0]

    def _lexical(self, text: str, locale: str | None, limit: int) -> Ranking:
        key = (normalize(text), _family(locale), limit, self._generation)
        memo = self._lexical_memo
        hit = memo.get(key)
        if hit is not None:
            return hit
        r = self._search(text, locale, limit, None, encoder=False)
        memo[key] = r
        if len(memo) > LEXICAL_MEMO:
            memo.popitem(last=False)
        return r

    def decide(self, text: str, *, locale: str | None = None, qvec: np.ndarray | None = None) -> Decision:
        return self.decision(self._top3(text, locale, qvec), text)

    def decision(self, r: Ranking, text: str = "") -> Decision:
        """The decision for a ranking (:meth:`assess`): out of domain, answer (maybe
        tentative), suggest or none, by the thresholds of the stage that ranked."""
        cfg = self.config
        answer_t, suggest_t = cfg.thresholds(r.consulted)
        matches = r.matches
        if out_of_domain(text, r, self._scripts()):
            return Decision("none", (), reason="out_of_domain", consulted=r.consulted)
        if not matches or matches[0].score < suggest_t:
            return Decision("none", (), consulted=r.consulted)
        if matches[0].score >= answer_t:
            return Decision("answer", matches, consulted=r.consulted)
        floor = suggest_t * SUGGEST_FLOOR
        options = tuple(m for m in matches if m.score >= floor)[:3]
        if self._single_option(matches, answer_t, suggest_t) or (
            r.lexical
            and r.lexical[0].item_id == matches[0].item_id
            and self._single_option(r.lexical, *cfg.thresholds(False))
        ):
            # one clear option (by the encoder, or by the lexical path with the encoder agreeing)
            return Decision("answer", matches, tentative=True, consulted=r.consulted)
        return Decision("suggest", options, consulted=r.consulted)

    def _single_option(self, matches: tuple[Match, ...], answer_t: float, suggest_t: float) -> bool:
        """The first match is the only option worth showing (every other below the suggestion
        floor) and within ``tentative_share`` of the answer threshold."""
        floor = suggest_t * SUGGEST_FLOOR
        return (
            bool(matches)
            and matches[0].score >= self.config.tentative_share * answer_t
            and all(m.score < floor for m in matches[1:])
        )

    def _scripts(self) -> frozenset[str]:
        """Scripts the knowledge base is written in (``ood.script_of``)."""
        return frozenset(s for s, n in (("han", self._zh_items), ("latin", len(self._items) - self._zh_items)) if n) | {
            "latin"
        }

    def needs_query_vector(self, text: str, locale: str | None) -> bool:
        """Whether :meth:`decide` would embed ``text`` (an encoder is on, no remembered
        decision applies and the lexical path is not sure), so that a caller on an event loop
        can embed it in a thread."""
        if not self._encoder_ready:
            return False
        assert self._semantic is not None  # _encoder_ready
        cached = self._decisions.get((normalize(text), _family(locale)))
        if cached is not None and cached[0] in (ANY_VERSION, self._semantic.version):
            return False
        return not self._lexical_sure(self._lexical(text, locale, 3))

    def _top3(self, text: str, locale: str | None, qvec: np.ndarray | None = None) -> Ranking:
        """The best three matches, remembered per (normalised text, language
        family) until the index changes (or, with an encoder, new vectors arrive):
        the same few questions make up most of a service centre's traffic and need
        not be ranked again each time."""
        key = (normalize(text), _family(locale))
        semantic_version = self._semantic.version if self._semantic is not None else 0
        cached = self._decisions.get(key)
        if cached is not None and cached[0] in (ANY_VERSION, semantic_version):
            self._decisions.move_to_end(key)
            return cached[1]
        generation = self._generation
        ranking = self.assess(text, locale=locale, qvec=qvec)
        if generation != self._generation or ranking.fallback:  # a (threaded) build changed the
            return ranking  # index meanwhile, or no encoder now
        # with vectors present, a ranking the lexical path was sure of never consulted them
        sure = self._encoder_ready and not ranking.consulted and self._lexical_sure(ranking)
        self._decisions[key] = (ANY_VERSION if sure else semantic_version, ranking)
        if len(self._decisions) > DECISION_CACHE:
            self._decisions.popitem(last=False)
        return ranking
