"""The knowledge base as the service uses it: published items in a search index."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from bot.core.clock import utcnow as _utcnow
from community.models import KnowledgeItem
from community.search import Decision, KBDoc, Matcher, MatcherConfig
from community.search.calibrate import Calibration, calibrate
from community.search.remote import EmbeddingsUnavailable

log = logging.getLogger(__name__)


def to_doc(item: KnowledgeItem) -> KBDoc:
    return KBDoc(
        id=item.id,
        title=item.title,
        variants=tuple(item.variants or ()),
        answer=item.answer,
        category=item.category,
        sms_code=item.sms_code,
        locale=item.locale,
        tags=tuple(item.tags or ()),
    )


class KnowledgeService:
    """Published items in memory (index + records), so answering needs no database read.

    Changes go through :meth:`reindex`; with a fan-out attached (:meth:`follow`), other
    worker processes reload the changed items too.
    """

    def __init__(self, config: MatcherConfig | None = None, *, calibrate: bool = False) -> None:
        self.matcher = Matcher(config)
        # self-calibration (community.search.calibrate): figures per stage, shown to reviewers
        self.self_calibrate = calibrate
        self.calibration: dict[str, Calibration] = {}
        self._calibrating: asyncio.Task[None] | None = None
        self._calibrate_again = False
        self._items: dict[int, KnowledgeItem] = {}
        self._by_key: dict[tuple[str, str], int] = {}
        self._fanout: Any = None
        self._origin = uuid.uuid4().hex
        self._checked_at: datetime | None = None  # start of the last look at the database
        self._seen: dict[int, datetime] = {}  # item id -> updated_at already applied
        self._embedding: asyncio.Task[None] | None = None  # semantic vectors being made

    def _cache(self, item: KnowledgeItem) -> None:
        self._drop(item.id)
        if item.status == "published":
            self._items[item.id] = item
            self._by_key[(item.key, item.locale)] = item.id

    def _drop(self, item_id: int) -> None:
        old = self._items.pop(item_id, None)
        if old is not None and self._by_key.get((old.key, old.locale)) == item_id:
            del self._by_key[(old.key, old.locale)]

    async def load(self) -> int:
        """(Re)build the index from every published item."""
        self._checked_at = _utcnow()
        items = await KnowledgeItem.filter(status="published").all()
        docs = [to_doc(i) for i in items]
        # building is CPU work: keep the event loop free while it runs
        await asyncio.get_running_loop().run_in_executor(None, self.matcher.build, docs)
        self._items.clear()
        self._by_key.clear()
        for item in items:
            self._cache(item)
        # what the build holds needs no catch-up (the next look prunes this)
        self._seen = {i.id: i.updated_at for i in items if i.updated_at is not None}
        log.info("knowledge index built: %d items", len(docs))
        self._embed_soon()
        if self.self_calibrate:
            try:
                await self.calibrate(encoder=False)
            except Exception:  # the fitted defaults stand; a failed self-check never fails a load
                log.exception("knowledge calibration failed")
        return len(docs)

    # --- self-calibration ----------------------------------------------------------------
    async def calibrate(self, *, encoder: bool | None = None, apply: bool | None = None) -> dict[str, Calibration]:
        """Leave-one-out over the items' own phrasings in a worker thread, and (with
        ``apply``, default: self-calibration on) the answer thresholds set from it: the
        lexical stage's always, the encoder's when it has vectors (``encoder`` None: both
        when possible). Returns the figures, also kept in :attr:`calibration`."""
        loop = asyncio.get_running_loop()
        stages = [False]
        if encoder is not False and self.matcher.semantic_ready:
            stages = [True] if encoder else [False, True]
        for enc in stages:
            result = await loop.run_in_executor(None, functools.partial(calibrate, self.matcher, encoder=enc))
            self.calibration[result.stage] = result
            if apply if apply is not None else self.self_calibrate:
                self._apply_calibration(result)
            log.info("knowledge calibration: %s", "; ".join(result.lines()[:2]))
        return dict(self.calibration)

    def _apply_calibration(self, c: Calibration) -> None:
        if c.threshold is None:
            return  # too little evidence: the fitted default stands
        cfg = self.matcher.config
        if c.stage == "encoder":
            cfg.answer_threshold = c.threshold
        elif cfg.semantic:
            cfg.lexical_answer_threshold = c.threshold
        else:
            cfg.answer_threshold = c.threshold
        self.matcher.forget_decisions()

    def _calibrate_soon(self) -> None:
        """After edits: recalibrate in the background, once at a time (a change meanwhile
        runs it again)."""
        if not self.self_calibrate:
            return
        if self._calibrating is not None and not self._calibrating.done():
            self._calibrate_again = True
            return
        self._calibrating = asyncio.get_running_loop().create_task(self._calibrate_loop())

    async def _calibrate_loop(self) -> None:
        while True:
            self._calibrate_again = False
            await asyncio.sleep(CALIBRATE_DELAY)  # let a burst of edits settle
            try:
                await self.calibrate()
            except Exception:  # the previous thresholds stand
                log.exception("knowledge calibration failed")
            if not self._calibrate_again:
                return

    # --- semantic vectors (MatcherConfig.semantic) ---------------------------------------
    def _embed_soon(self) -> None:
        """Embed waiting question texts in a worker thread (~10 ms each, so a large knowledge
        base takes minutes); the lexical index answers meanwhile."""
        if not self.matcher.semantic_pending or (self._embedding is not None and not self._embedding.done()):
            return
        self._embedding = asyncio.get_running_loop().create_task(self._embed())

    async def _embed(self) -> None:
        loop = asyncio.get_running_loop()
        total = 0
        try:
            while self.matcher.semantic_pending:
                if self.matcher.encoder_remote:
                    try:
                        done = await self.matcher.aembed_pending()
                    except EmbeddingsUnavailable as exc:  # the server is down: try again later
                        log.warning("embedding knowledge questions: %s; retrying in %.0f s", exc, EMBED_RETRY)
                        await asyncio.sleep(EMBED_RETRY)
                        continue
                else:
                    done = await loop.run_in_executor(None, self.matcher.embed_pending)
                if not done:
                    break  # closed
                total += done
        except Exception:  # the lexical index still answers; the next change tries again
            log.exception("embedding knowledge questions failed")
            return
        log.info("knowledge index: %d question texts embedded", total)
        if total:
            self._calibrate_soon()  # the encoder stage has vectors now

    async def close(self) -> None:
        """Stop embedding (after the batch in hand) and calibrating, and wait for them."""
        self.matcher.close()
        if self._calibrating is not None:
            self._calibrating.cancel()
            await asyncio.gather(self._calibrating, return_exceptions=True)
        if self._embedding is not None:
            self._embedding.cancel()  # (a thread's batch still finishes; a server request is dropped)
            await asyncio.gather(self._embedding, return_exceptions=True)
        encoder = self.matcher.config.encoder
        if encoder is not None and hasattr(encoder, "close"):
            await encoder.close()

    def reindex(self, items: Iterable[KnowledgeItem]) -> None:
        """Apply changed items incrementally (published ones in, others out)."""
        ids = []
        for item in items:
            self._apply(item)
            ids.append(item.id)
        if self._fanout is not None and ids:
            task = asyncio.get_running_loop().create_task(
                self._fanout.publish(KB_TOPIC, {"ids": ids, "origin": self._origin})
            )
            task.add_done_callback(_log_failure)

    def _apply(self, item: KnowledgeItem) -> None:
        if item.updated_at is not None:
            self._seen[item.id] = item.updated_at
        if item.status == "published":
            self.matcher.upsert(to_doc(item))
        else:
            self.matcher.remove(item.id)
        self._cache(item)
        self._embed_soon()
        self._calibrate_soon()

    async def refresh(self, ids: Iterable[int]) -> None:
        """Reload items another worker changed."""
        ids = list(ids)
        found = {i.id: i for i in await KnowledgeItem.filter(id__in=ids)}
        for item_id in ids:
            if item_id in found:
                self._apply(found[item_id])
            else:
                self.matcher.remove(item_id)
                self._drop(item_id)

    async def follow(self, fanout: Any) -> None:
        """Publish our changes on ``fanout`` and apply everyone else's (runs until cancelled)."""
        self._fanout = fanout
        async with fanout.subscribe(KB_TOPIC) as sub:
            async for event in sub:
                if event.get("origin") != self._origin:
                    try:
                        await self.refresh(int(i) for i in event.get("ids", []))
                    except Exception:  # keep following; the next full load repairs
                        log.exception("knowledge refresh failed")

    async def catch_up(self) -> list[int]:
        """Apply items changed in the database since the last look, whoever changed them
        (``kb import`` in another process, a worker without fan-out). One query on
        ``updated_at``; the window overlaps the previous one by :data:`CATCH_UP_OVERLAP` so
        that late commits and small clock differences are not missed, and items already
        applied at that ``updated_at`` are skipped. Returns the ids applied."""
        started = _utcnow()
        if self._checked_at is None:  # never loaded: nothing to catch up with
            self._checked_at = started
            return []
        since = self._checked_at - CATCH_UP_OVERLAP
        rows = await KnowledgeItem.filter(updated_at__gte=since).values_list("id", "updated_at")
        changed = [item_id for item_id, ts in rows if self._seen.get(item_id) != ts]
        if changed:
            await self.refresh(changed)
            log.info("knowledge catch-up: %d changed items applied", len(changed))
        self._checked_at = started
        self._seen = {i: ts for i, ts in self._seen.items() if ts >= started - CATCH_UP_OVERLAP}
        return changed

    async def watch(self, every: float) -> None:
        """Call :meth:`catch_up` every ``every`` seconds (runs until cancelled; 0 = never)."""
        if every <= 0:
            return
        while True:
            await asyncio.sleep(every)
            try:
                await self.catch_up()
            except Exception:  # a database hiccup: the next round looks again over the same window
                log.exception("knowledge catch-up failed")

    def decide(self, text: str, locale: str | None) -> Decision:
        """Blocking form, for scripts and tests: with an encoder, may embed the question here."""
        return self.matcher.decide(text, locale=locale)

    async def adecide(self, text: str, locale: str | None) -> Decision:
        """:meth:`decide` for the event loop: with an encoder, the question's vector (~10 ms
        of CPU, the GIL released) is computed in a worker thread."""
        qvec = None
        if self.matcher.needs_query_vector(text, locale):
            if self.matcher.encoder_remote:  # None when the server cannot help: the lexical path answers
                qvec = await self.matcher.aquery_vector(text)
            else:
                qvec = await asyncio.get_running_loop().run_in_executor(None, self.matcher.query_vector, text)
        return self.matcher.decide(text, locale=locale, qvec=qvec)

    async def get(self, item_id: int) -> KnowledgeItem | None:
        return self._items.get(item_id)

    async def localized(self, item: KnowledgeItem, locale: str) -> KnowledgeItem:
        """The same item in the member's locale when we have it."""
        if item.locale == locale:
            return item
        other = self._by_key.get((item.key, locale))
        return self._items[other] if other is not None else item

    async def by_code(self, code: str, locale: str) -> KnowledgeItem | None:
        code = code.upper()
        items = [i for i in self._items.values() if i.sms_code == code]
        for item in items:
            if item.locale == locale:
                return item
        return items[0] if items else None


KB_TOPIC = "knowledge"
CALIBRATE_DELAY = 2.0
EMBED_RETRY = 30.0  # seconds before embedding is tried again when the embeddings server failed  # seconds after an edit before the knowledge base recalibrates
# how far each look at the database reaches back before the previous one
CATCH_UP_OVERLAP = timedelta(seconds=60)


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception():
        log.warning("knowledge change not published: %s", task.exception())
