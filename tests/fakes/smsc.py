"""A loopback SMSC speaking real SMPP 3.4 PDUs, for the SMS tests and the benchmark.

Built on the ``smpp34`` package's asyncio server (its own Rust codec, independent of
smpplib, which the production ESME uses). It accepts binds, answers submit_sm with a
message id (or ESME_RTHROTTLED above an optional token-bucket throttle, or a chosen
error per destination), sends delivery receipts as deliver_sm (esm_class 0x04, the
conventional ``id:… stat:…`` text plus receipted_message_id / message_state TLVs), and
sends member texts (MO) as deliver_sm, concatenated with a UDH when long. Note: smpp34
closes the socket on ``unbind`` without sending ``unbind_resp``.

Every deliver_sm_resp it gets is recorded in ``deliver_resps`` (status and wall-clock
time, per delivery number and attempt; smpp34 does not expose the PDU sequence number).
A deliver_sm answered with a temporary error (ESME_RX_T_APPN), or not answered because
the session went away, is delivered again after ``redeliver_after`` seconds, as a real
SMSC retries (up to ``max_redeliveries`` times).
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
from dataclasses import dataclass, field

import smpp34

DLR_TEXT = "id:{id} sub:001 dlvrd:{d} submit date:2611261200 done date:2611261200 stat:{stat} err:{err} text:"
STATE_TLV = {"DELIVRD": 2, "EXPIRED": 3, "UNDELIV": 5, "REJECTD": 8}
ESME_RX_T_APPN = 0x64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Submitted:
    session_id: str
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    registered_delivery: int
    short_message: bytes
    message_id: str
    at: float


@dataclass
class DeliverResp:
    """One deliver_sm_resp as the SMSC saw it (``status`` None: the session went away)."""

    number: int  # the SMSC's own number for the message (the same on every redelivery)
    attempt: int  # 1 for the first delivery
    kind: str  # "mo" or "receipt"
    source_addr: str
    status: int | None
    at: float  # time.time() when the resp arrived


@dataclass
class FakeSmsc:
    system_id: str = "FAKESMSC"
    throttle_rate: float | None = None  # submit_sm per second before ESME_RTHROTTLED
    throttle_burst: float = 1.0
    send_receipts: bool = True
    receipt_status: dict[str, str] = field(default_factory=dict)  # destination -> stat word
    reject: dict[str, int] = field(default_factory=dict)  # destination -> command_status
    hold_responses: bool = False  # keep submit_sm unanswered (window tests)
    redeliver_after: float | None = 0.2  # retry a deliver_sm refused with a temporary error
    max_redeliveries: int = 5
    lose_resps: int = 0  # the next N MO deliver_sm_resps are lost on the wire: the SMSC redelivers
    deliver_resps: list[DeliverResp] = field(default_factory=list)
    port: int = 0
    submitted: list[Submitted] = field(default_factory=list)
    throttled: int = 0
    binds: list[str] = field(default_factory=list)
    sessions: dict[str, smpp34.Esme] = field(default_factory=dict)
    held: list[smpp34.SubmitSmEvent] = field(default_factory=list)
    _server: smpp34.Server | None = None
    _task: asyncio.Task[None] | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    _deliveries: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    _tokens: float = 0.0
    _last: float = 0.0

    async def start(self) -> int:
        self.port = self.port or free_port()
        self._server = smpp34.Server(host="127.0.0.1", port=self.port, system_id=self.system_id)
        await self._server.start()
        self._tokens, self._last = self.throttle_burst, time.monotonic()
        self._task = asyncio.create_task(self._serve())
        return self.port

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            for task in self._tasks:
                task.cancel()  # receipts and redeliveries still waiting for an ESME
            await asyncio.gather(self._task, *self._tasks, return_exceptions=True)
        if self._server:
            await self._server.stop()

    def _take_token(self) -> bool:
        if self.throttle_rate is None:
            return True
        now = time.monotonic()
        self._tokens = min(self.throttle_burst, self._tokens + (now - self._last) * self.throttle_rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    async def _serve(self) -> None:
        assert self._server is not None
        while True:
            ev = await self._server.next()
            if isinstance(ev, smpp34.Esme):
                self.sessions[ev.session_id] = ev
                self.binds.append(ev.system_id)
            elif isinstance(ev, smpp34.Unbound):
                self.sessions.pop(ev.session_id, None)
            elif isinstance(ev, smpp34.SubmitSmEvent):
                if self.hold_responses:
                    self.held.append(ev)
                    continue
                self.answer(ev)

    def answer(self, ev: smpp34.SubmitSmEvent) -> None:
        if ev.destination_addr in self.reject:
            ev.reject(self.reject[ev.destination_addr])
            return
        if not self._take_token():
            self.throttled += 1
            ev.reject(smpp34.ESME_RTHROTTLED)
            return
        message_id = f"{next(self._ids):08x}"
        ev.accept(message_id)
        self.submitted.append(
            Submitted(
                ev.session_id,
                ev.source_addr,
                ev.destination_addr,
                ev.esm_class,
                ev.data_coding,
                ev.registered_delivery,
                ev.short_message,
                message_id,
                time.monotonic(),
            )
        )
        if self.send_receipts and ev.registered_delivery & 0x01:
            stat = self.receipt_status.get(ev.destination_addr, "DELIVRD")
            self._spawn(self._receipt(ev.session_id, ev.destination_addr, ev.source_addr, message_id, stat))

    def release_held(self) -> None:
        held, self.held = self.held, []
        for ev in held:
            self.answer(ev)

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resps(self, *, kind: str | None = None, source_addr: str | None = None) -> list[DeliverResp]:
        return [
            r
            for r in self.deliver_resps
            if (kind is None or r.kind == kind) and (source_addr is None or r.source_addr == source_addr)
        ]

    async def _deliver(
        self,
        esme: smpp34.Esme | None,
        kind: str,
        params: dict[str, object],
        number: int | None = None,
        attempt: int = 1,
    ) -> int | None:
        """Send one deliver_sm, record its resp, and schedule a redelivery if it was refused
        for now; returns the resp's command_status (None: no resp)."""
        number = number if number is not None else next(self._deliveries)
        if esme is None:  # a redelivery: whichever session is bound now
            try:
                esme = await self._esme()
            except AssertionError:
                esme = None
        status: int | None = None
        if esme is not None:
            try:
                status = int((await esme.deliver_sm(**params)).command_status)  # type: ignore[arg-type]
            except Exception:  # the session ended before the resp came
                status = None
            if kind == "mo" and self.lose_resps > 0:  # the ESME answered; the SMSC never heard it
                self.lose_resps -= 1
                status = None
        self.deliver_resps.append(
            DeliverResp(number, attempt, kind, str(params.get("source_addr", "")), status, time.time())
        )
        if (
            (status is None or status == ESME_RX_T_APPN)
            and self.redeliver_after is not None
            and attempt <= self.max_redeliveries
        ):
            self._spawn(self._redeliver(kind, params, number, attempt + 1))
        return status

    async def _redeliver(self, kind: str, params: dict[str, object], number: int, attempt: int) -> None:
        assert self.redeliver_after is not None
        await asyncio.sleep(self.redeliver_after)
        await self._deliver(None, kind, params, number, attempt)

    async def _receipt(self, session_id: str, source: str, dest: str, message_id: str, stat: str) -> None:
        esme = self.sessions.get(session_id)
        if esme is None:
            return
        err = "000" if stat == "DELIVRD" else "001"
        text = DLR_TEXT.format(id=message_id, d="001" if stat == "DELIVRD" else "000", stat=stat, err=err)
        await self._deliver(
            esme,
            "receipt",
            dict(
                source_addr=source,
                destination_addr=dest,
                esm_class=0x04,
                short_message=text.encode(),
                tlvs=[
                    smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\x00"),
                    smpp34.Tlv(smpp34.TLV_MESSAGE_STATE, bytes([STATE_TLV.get(stat, 7)])),
                ],
            ),
        )

    async def _esme(self, timeout: float = 3.0) -> smpp34.Esme:
        """A bound receiver (the bind event may still be on its way to our serve loop)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for esme in self.sessions.values():
                if esme.can_receive:
                    return esme
            await asyncio.sleep(0.01)
        raise AssertionError("no ESME bound to receive")

    async def mo(self, source: str, text: str, *, dest: str = "10086", ton: int = 1, check: bool = True) -> int | None:
        """A member's short text: GSM (ASCII subset, unpacked) or UCS-2, one PDU; returns
        the deliver_sm_resp status (asserted ESME_ROK unless ``check`` is false)."""
        ascii_ok = all(" " <= c <= "~" and c not in "`[]{}\\^~|" for c in text)
        body, dc = (text.encode("ascii"), 0) if ascii_ok else (text.encode("utf-16-be"), 8)
        status = await self._deliver(
            await self._esme(),
            "mo",
            dict(
                source_addr=source,
                destination_addr=dest,
                source_addr_ton=ton,
                source_addr_npi=1,
                data_coding=dc,
                short_message=body,
            ),
        )
        if check:
            assert status == smpp34.ESME_ROK, status
        return status

    async def mo_concatenated(
        self,
        source: str,
        text: str,
        *,
        ref: int = 0x1234,
        octets_per_part: int = 134,
        order: list[int] | None = None,
        dest: str = "10086",
    ) -> int:
        """A long UCS-2 text in parts with a 16-bit-reference UDH, cut at fixed octet counts
        (as many handsets and SMSCs do: a surrogate pair may straddle two parts)."""
        raw = text.encode("utf-16-be")
        chunks = [raw[i : i + octets_per_part] for i in range(0, len(raw), octets_per_part)]
        total = len(chunks)
        esme = await self._esme()
        for seq in order or list(range(1, total + 1)):
            udh = bytes([6, 0x08, 4, ref >> 8, ref & 0xFF, total, seq])
            status = await self._deliver(
                esme,
                "mo",
                dict(
                    source_addr=source,
                    destination_addr=dest,
                    source_addr_ton=1,
                    source_addr_npi=1,
                    esm_class=0x40,
                    data_coding=8,
                    short_message=udh + chunks[seq - 1],
                ),
            )
            assert status == smpp34.ESME_ROK, status
        return total

    async def unbind_all(self) -> None:
        """The SMSC ends every session (maintenance): the ESME must bind again."""
        for esme in list(self.sessions.values()):
            await esme.unbind()
