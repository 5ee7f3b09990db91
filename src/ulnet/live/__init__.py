"""live -- the forwarding loop over live ports, its workers and its view.

NAME
    ulnet.live -- move batches between ports: AF_PACKET rings, TAP devices

SYNOPSIS
    from ulnet.live import open_port, Forwarder
    a, b = open_port("veth0", 0), open_port("veth1", 1)
    fw = Forwarder([a, b], peer=[1, 0])          # A -> B and B -> A
    fw.run(stop=lambda: done)

DESCRIPTION
    A *port* pairs a source (``RingSource``: TPACKET_V3 blocks with
    virtio-net headers, or ``TapPort``) with a sink (``TxRing`` or the same
    ``TapPort``). ``Forwarder.step`` takes what is ready on each port as one
    batch, runs the stages (decode, flow, the policy hook), sends the batch
    to the peer port with one ``send()``, then gives the ring frames back;
    it polls only when every port was empty. ``ulnet.live.workers`` runs N
    forwarders in processes joined by ``PACKET_FANOUT`` (symmetric hash).
    ``ulnet.live.view`` prints the running numbers.

    Latency: the bridge takes packets from the TPACKET_V3 block the kernel
    is still filling, woken per packet by a ringless socket on each port
    (``RingSource(peek=True)``), so light traffic does not wait for the
    1 ms block retirement; the forwarder empties those wake-up queues and
    looks at the rings once more before it sleeps. See docs/live.md for
    the measurements.

POLICY HOOK
    ``Forwarder(policy=hook)``: per batch, after decode, ``hook.process(
    batch, counters)`` runs the flow table with the stages that follow it
    (returns the ended flow chunks) and ``hook.emit(batch, counters, ports,
    src_vnet)`` sends each row where its verdict says (returns the rows
    sent now); ``hook.release_due`` / ``next_due_ms`` drive packets held
    back by a shaper; ``hook.reload()`` runs on SIGHUP (raising keeps the
    old rules). ``ulnet.live.policy.LivePolicy`` is that hook for the rule
    language. Rows neither sent nor held are counted in
    ``live.policy.dropped``.
"""

from ulnet.live.loop import Forwarder, Port, open_port

__all__ = ["Forwarder", "Port", "open_port"]
