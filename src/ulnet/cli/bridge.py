"""ulnet bridge -- forward between two interfaces (or an interface and the host) through the pipeline.

SYNOPSIS
    ulnet bridge A B [--workers N] [--stats-interval S] [--stats] [--qdisc-bypass] [--busy-poll USEC]
                     [--cpu-latency USEC|off]
    ulnet bridge A --host TAP [--stats-interval S] [--stats]
    ulnet bridge A B --port C [--port D ...] --rules RULES   (route / balance to more ports)

DESCRIPTION
    Normal mode (netmap's, libpeak's netfuse): every frame that arrives on A
    leaves on B and back, through decode, the flow table and the policy
    stage; ARP and other non-IP frames pass. A and B are put in promiscuous
    mode; they should carry no addresses, and the kernel must not forward
    between them itself. Each interface is read through a TPACKET_V3 ring
    (64 MiB of 128 KiB blocks) and written through a PACKET_TX_RING, one
    send() per batch. Packets are taken from the block the kernel is still
    filling, woken per packet, so a lone packet does not wait for its block
    to retire (docs/live.md). --ring v3-retire reads blocks only once
    retired (up to 1 ms per traversal); --ring v2 reads one frame per
    packet from a small ring that bursts overflow. --busy-poll USEC keeps
    looking at the rings for USEC microseconds after the last packet
    instead of sleeping: no wake-up per packet while traffic flows (on a VM
    whose idle CPUs halt, a wake-up costs tens of microseconds), a core
    kept busy until USEC of silence.

    CPU wake-up latency: by default, when run as root, the bridge holds a
    request of 0 us on /dev/cpu_dma_latency (Linux PM QoS) while it runs:
    idle CPUs poll instead of halting, which takes the wake-up cost (tens
    of microseconds on a VM) off every packet that finds the bridge asleep,
    without a busy loop of ulnet's: ping's added p50 +70-90 -> +30-40 us
    (docs/live.md). The request is the whole machine's (every idle CPU polls
    while it is held: power, and CPU time a hypervisor sees as busy) and the
    kernel drops it when the bridge exits, however it exits.
    --cpu-latency off holds none; --cpu-latency USEC holds that many
    microseconds (and is an error when it cannot be held). Without root the
    default request is not held and nothing is said.

    Offloads: ulnet changes nothing on the interfaces. The rings use
    virtio-net headers (PACKET_VNET_HDR), so GSO/GRO frames larger than the
    MTU cross whole with their segmentation and checksum metadata and the
    kernel segments them on output. VLAN tags the kernel stripped are put
    back into the frames.

    Transparent mode (--host TAP): the second port is a TAP device ulnet
    creates (or attaches to, if it exists) and brings up: frames between A
    and the local host's stack go through the pipeline. Give the TAP the
    host's address.

    --workers N forks N workers; each interface's rings join a PACKET_FANOUT
    group with the kernel's symmetric flow hash, so both directions of a
    flow are handled by the same worker.

    On a terminal a live view shows packets/s, bits/s, drops (kernel and
    ours) and flows; --stats-interval S prints one JSON object every S
    seconds to standard output instead. SIGINT/SIGTERM stop the bridge
    (exit 0); SIGHUP reloads the rules.

    --port C adds a port that only rules send to (route, balance): a load
    balancer in front of several links or machines. What arrives on it goes
    to A.

    --rules FILE runs the rule language (docs/rules.md) on the bridge: ports
    are named by their interface names (the TAP's name in transparent
    mode). block drops, reject answers with a TCP RST or ICMP unreachable
    out of the port the packet came in on, police drops above the rate,
    shape holds packets in a bounded queue and sends them at their
    departure time, route/balance pick the output port, capture writes the
    flow's packets to a file. A rules file with errors stops the bridge
    before it starts (exit 1); on SIGHUP a broken file is reported and the
    running rules stay in force. At exit, per rule, the packets, bytes and
    flows it decided, then the rows of rules that count by app (packets and
    bytes per application) or by host (the 10 busiest server names and the
    special rows), all workers summed, since the last reload, go to
    standard error as ulnet run prints them (--quiet-rules: not).
    --stats prints every non-zero counter at exit.

    An interface that goes down and up does not stop the bridge: it
    forwards again when the link is back.

EXIT STATUS
    0 stopped by a signal; 1 a worker failed; 2 an interface or TAP that
    cannot be used (missing, no privileges: root or CAP_NET_RAW and
    CAP_NET_ADMIN, TAP creation failure), or a --cpu-latency request that
    cannot be made.
"""

from __future__ import annotations

import sys

from ulnet.cli.common import positive_int, print_rule_table, print_splits, print_stats, ranged
from ulnet.sources.afpacket import LiveError



_busy_poll = ranged(float, 0, 1_000_000, "a number of microseconds", " microseconds", 1e-6)   # -> seconds
_interval = ranged(float, 0.05, 86400, "a number of seconds")
_cpu_latency_us = ranged(int, 0, 1_000_000, "a whole number of microseconds or 'off'", " microseconds")


def _cpu_latency(text: str):
    """--cpu-latency: 'off' (no request: None) or microseconds."""
    return None if text == "off" else _cpu_latency_us(text)


DEFAULT_CPU_LATENCY = -1     # 0 if the request can be made, else none (silently)


def add_arguments(p):
    p.add_argument("a", metavar="A", help="first interface")
    p.add_argument("b", metavar="B", nargs="?", help="second interface (normal mode)")
    p.add_argument("--host", metavar="TAP", help="transparent mode: the second port is this TAP device")
    p.add_argument("--port", dest="ports", action="append", default=[], metavar="IFACE",
                   help="one more port for route/balance rules (repeat); what it receives goes to A")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="worker processes (PACKET_FANOUT, symmetric hash); default 1")
    p.add_argument("--batch-size", type=positive_int, default=256, metavar="N",
                   help="most packets taken from a ring per step (default 256)")
    p.add_argument("--max-flows", type=positive_int, default=65536, metavar="N",
                   help="flow table capacity per worker (default 65536)")
    p.add_argument("--no-flows", action="store_true", help="skip the flow stage (decode only)")
    p.add_argument("--ring", choices=("v3", "v3-retire", "v2"), default="v3",
                   help="receive ring: v3 blocks read while the kernel fills them, woken per packet (default); "
                        "v3-retire: blocks read once retired (up to 1 ms per traversal); v2: one frame per packet "
                        "(a small ring: bursts overflow it)")
    p.add_argument("--qdisc-bypass", action="store_true", help="PACKET_QDISC_BYPASS on the transmit rings")
    p.add_argument("--busy-poll", type=_busy_poll, default=0.0, metavar="USEC",
                   help="keep looking at the rings for USEC microseconds after the last packet instead of "
                        "sleeping: lower latency for a busy core while traffic flows (default 0: sleep at once)")
    p.add_argument("--cpu-latency", type=_cpu_latency, metavar="USEC|off", default=DEFAULT_CPU_LATENCY,
                   help="CPU wake-up latency request (PM QoS, /dev/cpu_dma_latency) held while running. Default: 0 "
                        "when root (idle CPUs poll instead of halting: about 40 us less per packet that wakes the "
                        "bridge; every idle CPU of the machine polls), none otherwise. off: no request, CPUs sleep")
    p.add_argument("--rules", metavar="FILE",
                   help="rules (docs/rules.md) naming the ports by their interface (or TAP) names; SIGHUP reloads")
    p.add_argument("--stats-interval", type=_interval, metavar="S",
                   help="print one JSON line of running numbers every S seconds (standard output)")
    p.add_argument("--stats", action="store_true", help="print the counters to standard error at exit")
    p.add_argument("--quiet-rules", action="store_true",
                   help="with --rules: do not print the per-rule packets, bytes and flows at exit")


def run(args) -> int:
    prog = "ulnet bridge"
    if (args.b is None) == (args.host is None):
        print(f"{prog}: error: give two interfaces (A B) or one and --host TAP", file=sys.stderr)
        return 2
    specs = ([args.a, args.b] if args.b else [args.a, "tap:" + args.host]) + list(args.ports)
    if len(set(specs)) < len(specs):
        print(f"{prog}: error: an interface is named twice", file=sys.stderr)
        return 2
    # A <-> B; a port added with --port sends what it receives to A
    peer = [1, 0] + [0] * len(args.ports)
    from ulnet.flow import FlowTable
    from ulnet.live.view import make_view
    from ulnet.live.workers import run_bridge
    make_flows = None if args.no_flows else (lambda: FlowTable(args.max_flows))
    make_policy = None
    if args.rules:
        if args.no_flows:
            print(f"{prog}: error: --rules needs the flow stage (drop --no-flows)", file=sys.stderr)
            return 2
        from ulnet.live.policy import LivePolicy, RulesError, load_rules
        names = [s.removeprefix("tap:") for s in specs]
        try:
            loaded = load_rules(args.rules, names)          # a broken file stops here: nothing applied
        except RulesError as e:
            print(f"{e}\n{prog}: {args.rules}: rules not applied", file=sys.stderr)
            return 1
        make_policy = lambda table, cap: LivePolicy(args.rules, names, peer, table, cap)   # noqa: E731
    view = make_view(f"ulnet bridge {' <-> '.join(s.removeprefix('tap:') for s in specs)}",
                     args.stats_interval)
    rule_totals: list = []
    rule_splits: list = []
    from ulnet.live.pmqos import cpu_latency
    try:
        auto = args.cpu_latency == DEFAULT_CPU_LATENCY
        with cpu_latency(0 if auto else args.cpu_latency, required=not auto):
            counters, _ports, _flows, _per_worker = run_bridge(
                specs, peer, workers=args.workers, batch_size=args.batch_size, make_flows=make_flows,
                make_policy=make_policy,
                view=view, interval=args.stats_interval or 1.0, qdisc_bypass=args.qdisc_bypass,
                ring_version=2 if args.ring == "v2" else 3, peek=args.ring == "v3", rule_totals=rule_totals,
                rule_splits=rule_splits, busy_poll=args.busy_poll)
    except LiveError as e:
        if view is not None:
            view.close()
        msg = str(e)
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 1 if msg.startswith("a worker failed") else 2
    if view is not None:
        view.close()
    if args.rules and rule_totals and not args.quiet_rules:
        _print_rules(args.rules, names, loaded, rule_totals[0], rule_splits[0] if rule_splits else {})
    if args.stats:
        print_stats(counters)
    return 0


def _print_rules(path, names, loaded, totals, splits) -> None:
    """Per rule packets, bytes and flows at exit, then the count by app and
    count by host rows, as ulnet run prints them; after a SIGHUP reload, the
    rules in force since then."""
    from ulnet.live.policy import RulesError, load_rules
    try:
        loaded = load_rules(path, names)        # the file as reloaded last (if it still checks)
    except RulesError:
        pass
    rules = loaded[0].rules
    if len(rules) != len(totals):
        print(f"ulnet bridge: per-rule counts not shown: {path} changed since it was loaded", file=sys.stderr)
        return
    rows = [{"rule": r.index, "line": r.line, "text": r.text, "packets": int(totals[r.index, 0]),
             "bytes": int(totals[r.index, 1]), "flows": int(totals[r.index, 2])} for r in rules]
    print_rule_table(rows)
    print_splits(rows, splits)
