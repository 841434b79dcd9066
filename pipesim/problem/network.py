"""How messages travel between devices: links in the alpha-beta model, nodes, message sizes."""

from __future__ import annotations

from dataclasses import dataclass

from pipesim.problem.ops import Kind


@dataclass(frozen=True)
class Link:
    """One kind of link, in the alpha-beta model: a message occupies the link for size /
    bandwidth (one message at a time, first come first served) and arrives `latency` after
    it started, so latency delays a message without holding the link for the next."""

    latency: float = 0.0
    """Milliseconds from a message's start to its first byte arriving: propagation, software
    and kernel launch."""
    bandwidth: float | None = None
    """Bytes per second; None for a link whose bandwidth costs nothing."""

    def occupancy(self, size: float) -> float:
        """Milliseconds a message of `size` bytes holds the link."""
        if size == 0 or self.bandwidth is None:
            return 0.0
        return 1000.0 * size / self.bandwidth

    def transfer_time(self, size: float) -> float:
        """Milliseconds from a message's start on the link to its arrival."""
        return self.latency + self.occupancy(size)


@dataclass(frozen=True)
class Network:
    """How messages between devices travel: the links within a node and between nodes, the
    sizes of the messages, and whether a send holds its device until it has arrived."""

    intra_node: Link = Link()
    inter_node: Link = Link()
    devices_per_node: int | None = None
    """Consecutive devices grouped into nodes; None: every device in one node."""
    activation_size: float = 0.0
    """Bytes of one microbatch's activation message between stages."""
    gradient_size: float = 0.0
    """Bytes of one microbatch's gradient message between stages."""
    blocking: bool = False
    """Whether a send holds the sending device until the message has arrived."""
    slow_links: tuple[tuple[int, int, float], ...] = ()
    """(src, dst, factor): that link direction's messages take factor times as long (its
    latency times factor, its bandwidth divided by it): a link shared with other traffic."""

    @property
    def free(self) -> bool:
        """Whether every message arrives at once (closed forms assume it)."""
        sizes = (self.activation_size, self.gradient_size)
        links = (
            [self.intra_node]
            if self.devices_per_node is None
            else [self.intra_node, self.inter_node]
        )
        return all(link.transfer_time(size) == 0 for link in links for size in sizes)

    def crosses_nodes(self, src_device: int, dst_device: int) -> bool:
        per_node = self.devices_per_node
        return per_node is not None and src_device // per_node != dst_device // per_node

    def link(self, src_device: int, dst_device: int) -> Link:
        link = self.inter_node if self.crosses_nodes(src_device, dst_device) else self.intra_node
        for src, dst, factor in self.slow_links:
            if (src, dst) == (src_device, dst_device):
                bandwidth = None if link.bandwidth is None else link.bandwidth / factor
                return Link(link.latency * factor, bandwidth)
        return link

    def message_size(self, kind: Kind) -> float:
        """Bytes of the output of an op of `kind` (F: activation, B: gradient)."""
        return self.activation_size if kind is Kind.F else self.gradient_size

    def transfer_time(self, src_device: int, dst_device: int, kind: Kind) -> float:
        """Milliseconds from the start of the output of an op of `kind` on the link from
        `src_device` to `dst_device` to its arrival: latency + size / bandwidth."""
        return self.link(src_device, dst_device).transfer_time(self.message_size(kind))

    def occupancy(self, src_device: int, dst_device: int, kind: Kind) -> float:
        """Milliseconds that message holds its link: size / bandwidth."""
        return self.link(src_device, dst_device).occupancy(self.message_size(kind))
