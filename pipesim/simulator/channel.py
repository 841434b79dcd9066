"""A channel: one direction of the link between two devices.

A message occupies the link for size / bandwidth, one message at a time, first come first
served: a message handed over while the link is busy queues behind the ones before it. It
arrives latency + size / bandwidth after its start: latency delays it but does not hold the
link (the alpha-beta model, and the Zero Bubble paper's T_comm). Since service is FIFO and
each occupancy is known when the message is handed over, the channel computes when the link
frees up instead of running a server process: one SimPy timeout per message, O(1) per send.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy

from pipesim.problem.network import Network
from pipesim.problem.ops import Kind, Op
from pipesim.simulator.trace import LinkTotals, Recording, TransferRecord


class Channel:
    """The link from device `src` to device `dst`; calls `deliver(key)` when a message arrives."""

    __slots__ = (
        "_deliver",
        "_env",
        "_free_at",
        "_latency",
        "_occupancy",
        "_record",
        "_scales",
        "_sent",
        "busy",
        "dst",
        "messages",
        "queued",
        "src",
    )

    def __init__(
        self,
        env: simpy.Environment,
        src: int,
        dst: int,
        latency: float,
        occupancy: dict[Kind, float],
        deliver: Callable[[int], None],
        records: list[TransferRecord],
        sent: list[TransferRecord | None],
        scales: list[float] | None = None,
    ) -> None:
        self._env = env
        self._scales = scales
        """Per producer key, this run's multiplier of a message's time (link jitter)."""
        self.src = src
        self.dst = dst
        self._latency = latency
        # By kind code, how long its output occupies this link: an activation (output of F),
        # else a gradient (output of B).
        self._occupancy = tuple(occupancy[Kind.F if kind is Kind.F else Kind.B] for kind in Kind)
        self._deliver = deliver
        # Each message's record, in order, and by the key of the op whose output it carries.
        self._record, self._sent = records.append, sent
        self._free_at = 0.0
        # What the link carried, tallied as it goes: `summary.link_stats` would otherwise
        # read every record again (the same sums, in the same order).
        self.messages = 0
        self.busy = 0.0
        self.queued = 0.0

    def send(self, producer: Op, key: int) -> simpy.Event:
        """Hand over the output of `producer` now; return the event of its arrival."""
        now = self._env.now
        kind, stage, mb = producer
        end = self._occupy(kind, stage, mb, key, now)
        arrival = self._env.timeout(end - now)
        arrival.callbacks.append(lambda _event: self._deliver(key))
        return arrival

    def hand_over(
        self, kind: Kind, stage: int, mb: int, key: int, now: float, queued: float | None = None
    ) -> float:
        """Hand over the output of op `key` at `now`, which may be ahead of the clock (the
        link's queue depends only on what its sending device hands over, in order); return
        when it arrives: the time at which `send`'s timeout would fire. `queued`: when its
        sender posted it, if earlier (it waited for its receiver)."""
        # NOTE: once per message of a run ahead of the clock: `_occupy`, inlined.
        free_at = self._free_at
        start = now if now > free_at else free_at
        occupancy = self._occupancy[kind]
        latency = self._latency
        if self._scales is not None:
            scale = self._scales[key]
            occupancy, latency = occupancy * scale, latency * scale
        self._free_at = free_at = start + occupancy
        end = free_at + latency
        posted = now if queued is None else queued
        record = _new(TransferRecord, (self.src, self.dst, stage, kind, mb, posted, start, end))
        self._record(record)
        self._sent[key] = record
        self.messages += 1
        self.busy += occupancy
        self.queued += start - posted
        return now + (end - now)

    def _occupy(self, kind: Kind, stage: int, mb: int, key: int, now: float) -> float:
        """Queue a message handed over at `now`, record it, and return when it arrives (the
        event path's `hand_over`: the same arithmetic and records, kept apart so that the
        path run once per message of most runs stays inlined)."""
        start = max(now, self._free_at)
        occupancy = self._occupancy[kind]
        latency = self._latency
        if self._scales is not None:
            scale = self._scales[key]
            occupancy, latency = occupancy * scale, latency * scale
        self._free_at = start + occupancy
        end = self._free_at + latency
        record = TransferRecord(self.src, self.dst, stage, kind, mb, now, start, end)
        self._record(record)
        self._sent[key] = record
        self.messages += 1
        self.busy += occupancy
        self.queued += start - now
        return end


_new = tuple.__new__
"""A record without NamedTuple's Python-level __new__."""


class Links:
    """Every link direction of the network, each a `Channel` made when first used."""

    __slots__ = ("_channels", "_deliver", "_env", "_network", "_recording", "_scales")

    def __init__(
        self,
        env: simpy.Environment,
        network: Network,
        deliver: Callable[[int], None],
        recording: Recording,
        scales: list[float] | None = None,
    ) -> None:
        self._env = env
        self._scales = scales
        self._network = network
        self._deliver = deliver
        self._recording = recording
        """Where each sending device's messages are recorded."""
        self._channels: dict[tuple[int, int], Channel] = {}

    def send(self, producer: Op, key: int, src: int, dst: int) -> simpy.Event:
        """Hand `producer`'s output to the link from `src` towards `dst`; return its arrival.
        (Messages that take no time never get here: the device delivers them itself.)"""
        return self.channel(src, dst).send(producer, key)

    def channel(self, src: int, dst: int) -> Channel:
        """The link from `src` towards `dst`."""
        channel = self._channels.get((src, dst))
        if channel is None:
            network = self._network
            occupancy = {kind: network.occupancy(src, dst, kind) for kind in (Kind.F, Kind.B)}
            latency = network.link(src, dst).latency
            channel = self._channels[(src, dst)] = Channel(
                self._env,
                src,
                dst,
                latency,
                occupancy,
                self._deliver,
                self._recording.transfers[src],
                self._recording.sent,
                self._scales,
            )
        return channel

    def totals(self) -> dict[tuple[int, int], LinkTotals]:
        """Per link direction that carried a message: what it carried (`LinkTotals`)."""
        return {
            link: LinkTotals(channel.messages, channel.busy, channel.queued)
            for link, channel in sorted(self._channels.items())
            if channel.messages
        }
