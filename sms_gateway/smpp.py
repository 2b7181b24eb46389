"""SMPP 3.4 ESME bound as transceiver, on smpplib run off the event loop.

smpplib is synchronous, so its socket lives in threads: one reader thread per session
reads every PDU (responses, deliver_sm, enquire_link) and hands results to the event
loop; writes go through a small executor under a lock. The asyncio side owns the
policy: a bounded window of outstanding submit_sm, pacing at the configured rate,
ESME_RTHROTTLED / ESME_RMSGQFUL answered by backing off and resubmitting the same
part, enquire_link keep-alive, and reconnect with exponential backoff.

A deliver_sm is acknowledged only once ``on_deliver`` has handled it (for a member's
text: the pipeline recorded it): ESME_ROK then, ESME_RX_T_APPN if handling raised, so
the SMSC keeps the message and delivers it again instead of it being lost.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, cast

import smpplib.client
import smpplib.consts as C
import smpplib.smpp
from smpplib import exceptions as smpp_exc

from sms_gateway.encoding import Segment
from bot.core.tasks import Background

log = logging.getLogger(__name__)

ESME_ROK = 0x00
ESME_RINVBNDSTS = 0x04
ESME_RMSGQFUL = 0x14
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64  # "ESME receiver temporary app error": the SMSC retries later
PERMANENT_STATUSES = {0x01, 0x0A, 0x0B, 0x33, 0x42, 0x43, 0x44, 0x48, 0x49, 0x50, 0x51, 0x61, 0x62, 0x63}
TRANSIENT_STATUSES = {ESME_RMSGQFUL, ESME_RTHROTTLED}

DLR_STATES = {  # message_state TLV values (SMPP 3.4 §5.2.28)
    1: "enroute",
    2: "delivered",
    3: "expired",
    4: "deleted",
    5: "undelivered",
    6: "accepted",
    7: "unknown",
    8: "rejected",
}
DLR_STAT_WORDS = {
    "ENROUTE": "enroute",
    "DELIVRD": "delivered",
    "EXPIRED": "expired",
    "DELETED": "deleted",
    "UNDELIV": "undelivered",
    "ACCEPTD": "accepted",
    "UNKNOWN": "unknown",
    "REJECTD": "rejected",
}
FAILED_STATES = {"expired", "deleted", "undelivered", "rejected", "unknown"}
_DLR_RE = re.compile(r"id:(?P<id>\S+).*?stat:(?P<stat>\w+)(?:.*?err:(?P<err>\w+))?", re.I | re.S)


class SmppError(Exception):
    """A submit_sm that failed; ``status`` is the SMPP command_status (None: no answer)."""

    def __init__(self, reason: str, status: int | None = None, *, written: bool = False) -> None:
        super().__init__(reason)
        self.status = status
        self.written = written  # the PDU left us: it may have been accepted

    @property
    def permanent(self) -> bool:
        return self.status in PERMANENT_STATUSES


class NotConnected(SmppError):
    """No bound session right now."""


@dataclass(slots=True)
class SmppConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    source_addr: str = ""
    rate: float = 10.0  # submit_sm per second (one per part)
    window: int = 10  # outstanding submit_sm without a response
    enquire_link_seconds: float = 30.0
    response_timeout: float = 10.0
    connect_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 60.0
    throttle_backoff: float = 1.0
    max_throttle_retries: int = 20


@dataclass(slots=True)
class DeliverSm:
    """An inbound deliver_sm, copied out of the reader thread."""

    source_addr: str
    source_ton: int
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    receipted_message_id: str | None = None
    message_state: int | None = None
    sequence: int = 0  # the PDU's sequence_number, echoed by our deliver_sm_resp

    @property
    def is_receipt(self) -> bool:
        return self.esm_class & 0x3C in (0x04, 0x08, 0x10, 0x20)

    @property
    def has_udh(self) -> bool:
        return bool(self.esm_class & 0x40)


@dataclass(slots=True)
class Receipt:
    message_id: str
    status: str  # delivered, undelivered, ...
    error: str = ""

    @property
    def failed(self) -> bool:
        return self.status in FAILED_STATES


def parse_receipt(pdu: DeliverSm) -> Receipt | None:
    """A delivery receipt from its TLVs, else from the conventional text (Appendix B)."""
    text = pdu.short_message.decode("latin-1", "replace")
    m = _DLR_RE.search(text)
    message_id = pdu.receipted_message_id or (m.group("id") if m else None)
    if not message_id:
        return None
    if pdu.message_state is not None and pdu.message_state in DLR_STATES:
        status = DLR_STATES[pdu.message_state]
    elif m:
        status = DLR_STAT_WORDS.get(m.group("stat").upper(), m.group("stat").lower())
    else:
        status = "unknown"
    err = (m.group("err") or "") if m else ""
    return Receipt(message_id=message_id, status=status, error="" if err.strip("0") == "" else err)


@dataclass
class Stats:
    submitted: int = 0
    throttled: int = 0
    reconnects: int = 0
    binds: int = 0
    delivered_pdus: int = 0
    deliver_temp_errors: int = 0  # deliver_sm answered ESME_RX_T_APPN (left to the SMSC to retry)
    enquire_links: int = 0  # sent by us on an idle session
    enquire_link_resps: int = 0
    errors: dict[int, int] = field(default_factory=dict)


class _LockedSequence(smpplib.client.SimpleSequenceGenerator):  # type: ignore[misc]  # smpplib is untyped
    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def next_sequence(self) -> int:
        with self._lock:
            return cast(int, super().next_sequence())


class _Client(smpplib.client.Client):  # type: ignore[misc]  # smpplib is untyped
    """smpplib's client with thread-safe writes and a last-received timestamp."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, sequence_generator=_LockedSequence(), allow_unknown_opt_params=True, **kwargs)
        self._send_lock = threading.Lock()
        self.last_rx = time.monotonic()

    def send_pdu(self, p: Any) -> bool:
        with self._send_lock:
            return cast(bool, super().send_pdu(p))

    def read_pdu(self) -> Any:
        pdu = super().read_pdu()
        self.last_rx = time.monotonic()
        return pdu

    def abort(self) -> None:
        """Unblock the reader and drop the socket (thread-safe)."""
        sock = self._socket
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00")
    return str(value)


class SmppEsme:
    """One transceiver session to the SMSC, kept bound for the process's lifetime."""

    def __init__(
        self,
        config: SmppConfig,
        *,
        on_deliver: Callable[[DeliverSm], Awaitable[None]] | None = None,
    ) -> None:
        self.config = config
        self.on_deliver = on_deliver
        self.stats = Stats()
        self.connected = asyncio.Event()
        self._client: _Client | None = None
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="smpp")  # bind + reader
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smpp-w")  # ordered, paced writes
        self._window = asyncio.Semaphore(config.window)
        self._pending: dict[int, asyncio.Future[tuple[int, str]]] = {}
        self._next_slot = 0.0  # writer thread only
        self._paused_until = 0.0
        self._stopping = False
        self._stop_wait = threading.Event()  # wakes a paced write that is waiting for its slot on stop
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inbound = Background("smpp inbound")

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._supervise(), name="smpp-esme")

    async def wait_bound(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self.connected.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Unbind politely, then close; an SMSC that closes on unbind is fine too."""
        self._stopping = True
        self._stop_wait.set()
        if self._inbound:  # let deliver_sm in hand be handled and acknowledged on this session
            await asyncio.wait(set(self._inbound), timeout=self.config.response_timeout)
        client = self._client
        if client is not None and self.connected.is_set():
            try:
                await asyncio.wait_for(self._run(self._send_unbind, client), 2.0)
            except Exception:  # already gone
                pass
        if self._task and client is None:
            self._task.cancel()  # not bound: nothing to say goodbye to
            await asyncio.gather(self._task, return_exceptions=True)
        elif self._task:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), 2.0)
            except (asyncio.TimeoutError, Exception):
                if client is not None:
                    client.abort()
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._inbound:
            await asyncio.gather(*self._inbound, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=False, cancel_futures=True)

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def _supervise(self) -> None:
        delay = self.config.reconnect_min
        while not self._stopping:
            try:
                client = await self._run(self._connect_and_bind)
            except Exception as exc:
                log.warning(
                    "SMPP bind to %s:%s failed: %s; retrying in %.1fs", self.config.host, self.config.port, exc, delay
                )
                await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))
                delay = min(delay * 2, self.config.reconnect_max)
                continue
            delay = self.config.reconnect_min
            self._client = client
            self.stats.binds += 1
            self.connected.set()
            try:
                await self._run(self._reader_loop, client)
            finally:
                self.connected.clear()
                self._client = None
                await self._run(self._close, client)
                self._fail_pending("SMPP connection lost")
            if not self._stopping:
                self.stats.reconnects += 1
                log.warning("SMPP session to %s:%s ended; reconnecting", self.config.host, self.config.port)
                await asyncio.sleep(delay)

    def _fail_pending(self, reason: str) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(SmppError(reason, written=True))

    # --- thread side ------------------------------------------------------------------------
    def _connect_and_bind(self) -> _Client:
        cfg = self.config
        client = _Client(cfg.host, cfg.port, timeout=cfg.connect_timeout)
        client.connect()
        try:
            client.bind_transceiver(system_id=cfg.system_id, password=cfg.password, system_type=cfg.system_type)
        except Exception:
            client.disconnect()
            raise
        client._socket.settimeout(cfg.enquire_link_seconds)
        client.last_rx = time.monotonic()
        return client

    def _close(self, client: _Client) -> None:
        client.state = C.SMPP_CLIENT_STATE_OPEN  # we unbound (or the peer left): no warning
        try:
            client.disconnect()
        except Exception:
            pass

    def _send_unbind(self, client: _Client) -> None:
        client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))

    def _reader_loop(self, client: _Client) -> None:
        """Read PDUs until the session ends; runs in a pool thread."""
        loop = self._loop
        assert loop is not None
        while True:
            try:
                pdu = client.read_pdu()
            except socket.timeout:
                idle = time.monotonic() - client.last_rx
                if idle > 3 * self.config.enquire_link_seconds:
                    log.warning("SMPP peer silent for %.0fs; dropping the session", idle)
                    return
                try:
                    client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
                except smpp_exc.ConnectionError:
                    return
                self.stats.enquire_links += 1
                continue
            except (smpp_exc.ConnectionError, smpp_exc.PDUError, OSError, ValueError) as exc:
                if not self._stopping:
                    log.info("SMPP read ended: %r", exc)
                return
            command = pdu.command
            try:
                if command in ("submit_sm_resp", "generic_nack"):
                    status = int(pdu.status or 0)
                    message_id = _text(getattr(pdu, "message_id", None)) if status == ESME_ROK else ""
                    loop.call_soon_threadsafe(self._resolve, pdu.sequence, status, message_id)
                elif command == "deliver_sm":
                    inbound = DeliverSm(
                        source_addr=_text(pdu.source_addr),
                        source_ton=int(pdu.source_addr_ton or 0),
                        destination_addr=_text(pdu.destination_addr),
                        esm_class=int(pdu.esm_class or 0),
                        data_coding=int(pdu.data_coding or 0),
                        short_message=bytes(pdu.short_message or b"")
                        or bytes(getattr(pdu, "message_payload", None) or b""),
                        receipted_message_id=_text(getattr(pdu, "receipted_message_id", None)) or None,
                        message_state=getattr(pdu, "message_state", None),
                        sequence=int(pdu.sequence),
                    )
                    # no ack here: the loop answers once the message is handled (stored)
                    loop.call_soon_threadsafe(self._dispatch_inbound, inbound, client)
                elif command == "enquire_link":
                    resp = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
                    resp.sequence = pdu.sequence
                    client.send_pdu(resp)
                elif command == "enquire_link_resp":
                    self.stats.enquire_link_resps += 1
                elif command == "unbind":
                    resp = smpplib.smpp.make_pdu("unbind_resp", client=client)
                    resp.sequence = pdu.sequence
                    client.send_pdu(resp)
                    return
                elif command == "unbind_resp":
                    return
            except smpp_exc.ConnectionError:
                return

    def _send_deliver_sm_resp(self, client: _Client, sequence: int, status: int) -> None:
        resp = smpplib.smpp.make_pdu("deliver_sm_resp", client=client, status=status)
        resp.sequence = sequence
        client.send_pdu(resp)

    def _submit_blocking(self, client: _Client, params: dict[str, Any], fut: asyncio.Future[tuple[int, str]]) -> None:
        """Wait for this PDU's slot, then write it (writer thread: the pacing is not
        disturbed by event-loop or executor scheduling between the wait and the write)."""
        interval = 1.0 / self.config.rate
        now = time.monotonic()
        slot = max(self._next_slot, now, self._paused_until)
        if slot > now:
            self._stop_wait.wait(slot - now)  # off the event loop, in the single writer thread
        # no bursts: after a stall the next write may follow at once, then the grid restarts
        # (catching up a whole stall would overrun an SMSC's token bucket)
        self._next_slot = max(slot + interval, time.monotonic())
        pdu = smpplib.smpp.make_pdu("submit_sm", client=client, **params)
        self._pending[pdu.sequence] = fut
        try:
            client.send_pdu(pdu)
        except Exception:
            self._pending.pop(pdu.sequence, None)
            raise

    # --- loop side --------------------------------------------------------------------------
    def _resolve(self, sequence: int, status: int, message_id: str) -> None:
        fut = self._pending.pop(sequence, None)
        if fut is not None and not fut.done():
            fut.set_result((status, message_id))

    def _dispatch_inbound(self, pdu: DeliverSm, client: _Client) -> None:
        self.stats.delivered_pdus += 1
        task = asyncio.ensure_future(self._safe_deliver(pdu, client))
        self._inbound.keep(task)

    async def _safe_deliver(self, pdu: DeliverSm, client: _Client) -> None:
        """Handle, then acknowledge: ESME_ROK once ``on_deliver`` returned (a member's
        text is recorded, a receipt applied, or a part buffered for reassembly), else
        ESME_RX_T_APPN so the SMSC delivers it again later. The resp goes to the session
        the PDU came in on (its sequence number means nothing on another one)."""
        status = ESME_ROK
        try:
            if self.on_deliver is not None:
                await self.on_deliver(pdu)
        except Exception:
            log.exception("handling deliver_sm from %s failed; answering ESME_RX_T_APPN", pdu.source_addr)
            status = ESME_RX_T_APPN
        await self._respond(client, pdu.sequence, status)

    async def _respond(self, client: _Client, sequence: int, status: int) -> None:
        """Write a deliver_sm_resp off the loop (the client's locked send_pdu)."""
        try:
            await asyncio.to_thread(self._send_deliver_sm_resp, client, sequence, status)
        except (smpp_exc.ConnectionError, smpp_exc.PDUError, OSError) as exc:
            # the session went away meanwhile: the SMSC never got the resp and redelivers
            log.warning(
                "deliver_sm_resp 0x%08X for sequence %d not sent (%r); the SMSC will redeliver", status, sequence, exc
            )
            return
        if status != ESME_ROK:
            self.stats.deliver_temp_errors += 1

    async def submit_part(self, destination: str, seg: Segment, *, ton: int = 1) -> str:
        """Submit one part; returns the SMSC message_id. Throttling is waited out here."""
        attempts = 0
        while True:
            if not self.connected.is_set():
                if not await self.wait_bound(self.config.response_timeout):
                    raise NotConnected("not bound to the SMSC")
            client = self._client
            if client is None:
                continue
            async with self._window:
                fut: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
                params = dict(
                    source_addr_ton=5 if self.config.source_addr and not self.config.source_addr.isdigit() else 1,
                    source_addr_npi=0 if self.config.source_addr and not self.config.source_addr.isdigit() else 1,
                    source_addr=self.config.source_addr,
                    dest_addr_ton=ton,
                    dest_addr_npi=1,
                    destination_addr=destination,
                    esm_class=seg.esm_class,
                    data_coding=seg.data_coding,
                    registered_delivery=1,
                    short_message=seg.short_message,
                )
                try:
                    await asyncio.get_running_loop().run_in_executor(
                        self._writer, self._submit_blocking, client, params, fut
                    )
                except (smpp_exc.ConnectionError, smpp_exc.PDUError, OSError) as exc:
                    client.abort()
                    raise SmppError(f"SMPP write failed: {exc}") from exc
                try:
                    status, message_id = await asyncio.wait_for(fut, self.config.response_timeout)
                except asyncio.TimeoutError as exc:
                    raise SmppError("no submit_sm_resp in time", written=True) from exc
            if status == ESME_ROK:
                self.stats.submitted += 1
                return message_id
            self.stats.errors[status] = self.stats.errors.get(status, 0) + 1
            if status in TRANSIENT_STATUSES and attempts < self.config.max_throttle_retries:
                attempts += 1
                if status == ESME_RTHROTTLED:
                    self.stats.throttled += 1
                backoff = self.config.throttle_backoff * min(2 ** (attempts - 1), 8)
                self._paused_until = max(self._paused_until, time.monotonic() + backoff)
                continue  # the SMSC refused it: resubmitting cannot duplicate
            if status == ESME_RINVBNDSTS:
                client.abort()
            name = C.DESCRIPTIONS.get(status, "unknown status")
            raise SmppError(f"submit_sm refused: 0x{status:08X} {name}", status)

    async def submit(self, destination: str, segments: list[Segment], *, ton: int = 1) -> list[str]:
        """Submit every part in order; the message ids, one per part."""
        return [await self.submit_part(destination, seg, ton=ton) for seg in segments]
