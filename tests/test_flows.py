"""Flow tracking: expiry, eviction, export-once, outputs, options."""

import csv
import io
import json
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest
from scapy.all import ICMP, IP, TCP, UDP, Ether, Raw, wrpcap

import ulnet
from conftest import LIBPEAK, NDPI_PCAPS, SAMPLE, ULNET, run_ulnet
from ulnet.flow import FlowTable

A, B = "192.0.2.1", "198.51.100.2"


def _pkt(t, src=A, dst=B, sport=1000, dport=80, proto="udp", flags="", payload=b"x"):
    l4 = TCP(sport=sport, dport=dport, flags=flags) if proto == "tcp" else UDP(sport=sport, dport=dport)
    p = Ether() / IP(src=src, dst=dst) / l4 / Raw(payload)
    p.time = t
    return p


def _write(tmp_path, pkts, name="t.pcap"):
    path = tmp_path / name
    wrpcap(str(path), pkts)
    return path


def _flows(path, **kw):
    return list(ulnet.flows(str(path), **kw))


def test_bidirectional_src_is_first_sender_and_ids_in_order(tmp_path):
    pk = [_pkt(0, A, B, 1000, 80), _pkt(1, B, A, 80, 1000), _pkt(2, A, "203.0.113.9", 5, 6),
          _pkt(3, B, A, 80, 1000, payload=b"yy")]
    f = _flows(_write(tmp_path, pk))
    assert [r.id for r in f] == [0, 1]
    assert (f[0].src_ip, f[0].src_port, f[0].dst_ip, f[0].dst_port) == (A, 1000, B, 80)
    assert (f[0].src2dst_packets, f[0].dst2src_packets) == (1, 2)
    assert f[0].dst2src_bytes == len(pk[1]) + len(pk[3])
    assert f[0].bidirectional_duration_ms == 3000


def test_icmp_keyed_without_ports(tmp_path):
    pk = []
    for k in range(3):
        e = Ether() / IP(src=A, dst=B) / ICMP(type=8, id=100 + k, seq=k)
        e.time = k
        r = Ether() / IP(src=B, dst=A) / ICMP(type=0, id=100 + k, seq=k)
        r.time = k + 0.1
        pk += [e, r]
    f = _flows(_write(tmp_path, pk))
    assert len(f) == 1 and f[0].src_port == 0 and f[0].dst_port == 0
    assert (f[0].src2dst_packets, f[0].dst2src_packets) == (3, 3)


def test_idle_timeout(tmp_path):
    path = _write(tmp_path, [_pkt(0), _pkt(1), _pkt(200), _pkt(1000, A, "203.0.113.1")])
    f = _flows(path)
    assert [(r.bidirectional_packets, r.expiration_id) for r in f] == [(2, 0), (1, 0), (1, -1)]
    assert len(_flows(path, idle_timeout=300)) == 2
    f = _flows(path, idle_timeout=300)
    assert f[0].bidirectional_packets == 3 and f[0].expiration_id == 0  # ended by the packet at t=1000


def test_active_timeout(tmp_path):
    path = _write(tmp_path, [_pkt(60 * k) for k in range(41)])
    f = _flows(path)
    assert [r.expiration_id for r in f] == [1, -1]
    assert f[0].bidirectional_packets == 31 and f[1].bidirectional_packets == 10


def test_tcp_rst_and_fin_end_flows(tmp_path):
    pk = [_pkt(0, proto="tcp", flags="S"), _pkt(0.1, B, A, 80, 1000, "tcp", "SA"),
          _pkt(0.2, proto="tcp", flags="R"),
          _pkt(30, proto="tcp", flags="S"), _pkt(30.1, B, A, 80, 1000, "tcp", "SA"),
          _pkt(30.2, proto="tcp", flags="FA"), _pkt(30.3, B, A, 80, 1000, "tcp", "FA"),
          _pkt(30.4, proto="tcp", flags="A"),
          _pkt(31, proto="tcp", flags="S")]   # new SYN on the closed 5-tuple
    f = _flows(_write(tmp_path, pk))
    assert [(r.bidirectional_packets, r.expiration_id, r.tcp_state) for r in f] == \
        [(3, 2, "reset"), (5, 2, "closed"), (1, -1, "new")]
    assert f[0].src2dst_rst_packets == 1 and f[0].dst2src_syn_packets == 1 and f[1].dst2src_fin_packets == 1


def test_table_full_evicts_least_recently_seen_and_exports_everything_once(tmp_path):
    pk = [_pkt(k, A, B, 2000 + k, 53) for k in range(10)] + [_pkt(20, A, B, 2009, 53)]
    path = _write(tmp_path, pk)
    p = run_ulnet("flows", "--format", "jsonl", "--max-flows", 4, "--stats", path, check=True)
    recs = [json.loads(x) for x in p.stdout.decode().splitlines()]
    assert sorted(r["id"] for r in recs) == list(range(10))
    assert sum(r["bidirectional_packets"] for r in recs) == 11
    assert [r["src_port"] for r in recs if r["expiration_id"] == 3] == [2000 + k for k in range(6)]
    assert "flow.table_full                6" in " ".join(p.stderr.decode().split("  ")) or \
        any(line.split()[:2] == ["flow.table_full", "6"] for line in p.stderr.decode().splitlines())


@pytest.mark.parametrize("path", [SAMPLE, LIBPEAK / "test.pcap"] +
                         [p for p in NDPI_PCAPS if p.name in ("dns_fragmented.pcap", "teredo.pcap", "http_ipv6.pcap")],
                         ids=lambda p: p.name)
def test_every_ip_packet_on_exactly_one_flow(path):
    f = _flows(path)
    ids = [r.id for r in f]
    assert sorted(ids) == list(range(len(ids)))
    peek = run_ulnet("peek", "--format", "jsonl", path, check=True).stdout.decode().splitlines()
    n_ip = sum(1 for x in peek if json.loads(x)["ip_version"])
    assert sum(r.bidirectional_packets for r in f) == n_ip


def test_fragments_counted_on_their_datagram():
    path = next(p for p in NDPI_PCAPS if p.name == "dns_fragmented.pcap")
    whole = {(r.src_ip, r.src_port, r.dst_port): r for r in _flows(path)}
    first = {(r.src_ip, r.src_port, r.dst_port): r for r in _flows(path, fragments="first")}
    k = ("2a00:1450:4013:c06::105", 63369, 53)
    assert (first[k].dst2src_packets, whole[k].dst2src_packets) == (1, 2)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_flows_output_independent_of_batch_size(fmt, tmp_path):
    pk = [_pkt(k * 50, A, B, 3000 + k % 7, 53) for k in range(60)]
    path = _write(tmp_path, pk)
    for f in (path, LIBPEAK / "test.pcap"):
        outs = [run_ulnet("flows", "--format", fmt, "--max-flows", 3, "--batch-size", bs, f, check=True).stdout
                for bs in (1, 7, 256)]
        assert outs[0] and outs[0] == outs[1] == outs[2]


def test_formats_agree(tmp_path):
    out = tmp_path / "f.parquet"
    run_ulnet("flows", "--format", "parquet", "-o", out, SAMPLE, check=True)
    pa_rows = pq.read_table(out).to_pylist()
    js = [json.loads(x) for x in run_ulnet("flows", "--format", "jsonl", SAMPLE, check=True).stdout.decode().splitlines()]
    cs = list(csv.DictReader(io.StringIO(run_ulnet("flows", SAMPLE, check=True).stdout.decode())))
    assert len(pa_rows) == len(js) == len(cs) == 9
    for a, b, c in zip(pa_rows, js, cs):
        assert a == b
        assert {k: str(v) for k, v in b.items()} == c


def test_python_api_pandas_arrow_csv(tmp_path):
    r = ulnet.flows(SAMPLE, statistics=True)
    df = r.to_pandas()
    assert len(df) == 9 and "bidirectional_ps_mean" in df.columns
    t = r.to_arrow()
    assert t.num_rows == 9
    assert r.to_csv(tmp_path / "x.csv") == 9
    assert (tmp_path / "x.csv").read_text().splitlines()[0].startswith('"id","expiration_id","src_ip"')
    dns = df[df.dst_port == 53].iloc[0]
    assert dns.bidirectional_ps_min == 75 and dns.bidirectional_ps_max == 106
    assert dns.bidirectional_ps_mean == pytest.approx(90.5)
    assert dns.bidirectional_piat_ms_mean == pytest.approx(20.0)


@pytest.mark.parametrize("args,needle", [
    (["--max-flows", "0"], "--max-flows"), (["--idle-timeout", "-1"], "--idle-timeout"),
    (["--active-timeout", "abc"], "--active-timeout"), (["--format", "xml"], "--format"),
    (["--batch-size", "0"], "--batch-size")])
def test_bad_options_one_line_nonzero(args, needle):
    p = run_ulnet("flows", *args, SAMPLE)
    assert p.returncode == 2
    err = p.stderr.decode().strip().splitlines()
    assert len(err) == 1 and needle in err[0] and p.stdout == b""


def test_parquet_needs_a_file():
    p = run_ulnet("flows", "--format", "parquet", SAMPLE)
    assert p.returncode == 2 and "parquet" in p.stderr.decode()


def _pipe_pending(fh) -> int:
    """Bytes written into a pipe and not yet read by the other end."""
    import array, fcntl, termios
    n = array.array("i", [0])
    fcntl.ioctl(fh.fileno(), termios.FIONREAD, n)
    return n[0]


def test_sigterm_exports_open_flows(tmp_path):
    """Feed a capture through a pipe, stop with SIGTERM while ulnet waits for
    more: every flow seen so far is written, once."""
    data = SAMPLE.read_bytes()
    run_ulnet("flows", SAMPLE, check=True)   # warm the compile cache: the timing below is then ms
    proc = subprocess.Popen(ULNET + ["flows", "--format", "jsonl", "-"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(data)      # whole capture, but the pipe stays open
        proc.stdin.flush()
        # wait until ulnet has taken every byte out of the pipe and sits in
        # read(0, ...) waiting for more, twice in a row (rchar would not do: it
        # counts the module and cache files read at start-up too)
        deadline, settled = time.time() + 120, 0
        while time.time() < deadline and settled < 2 and proc.poll() is None:
            time.sleep(0.25)
            try:
                with open(f"/proc/{proc.pid}/syscall") as f:
                    call = f.read().split()
            except OSError:
                call = []
            waiting = len(call) > 1 and call[0] == "0" and int(call[1], 16) == 0
            settled = settled + 1 if waiting and _pipe_pending(proc.stdin) == 0 else 0
        assert settled == 2, "ulnet never waited on its input"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)         # stdin stays open: only the signal can end it
        out, err = proc.stdout.read(), proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
    recs = [json.loads(x) for x in out.decode().splitlines()]
    assert sorted(r["id"] for r in recs) == list(range(9)), err.decode()
    assert all(r["expiration_id"] == -1 for r in recs)
    assert proc.returncode == 130


def test_memory_per_flow_within_200_bytes():
    t = FlowTable(max_flows=1_000_000)
    assert t.memory_bytes() / 1_000_000 <= 200


def test_hash_seed_differs_per_table():
    assert FlowTable(16).S[8] != FlowTable(16).S[8]


def test_flush_empties_the_table_and_it_tracks_again():
    """The final flush exports without taking flows out of the index one by one
    and then resets the table: a second pass over the same capture on the same
    table gives the same flows (new ids), reusing entries in a new order."""
    from ulnet.pipeline import Pipeline
    from ulnet.flow.records import to_columns

    t = FlowTable(4)                   # small: eviction and reuse of entries on the sample
    passes = []
    for _ in range(2):
        p = Pipeline([str(SAMPLE)], flows=t)
        chunks = []
        for _b in p:
            chunks += p.take_ended()
        chunks += list(p.finish_flows())
        assert t.active_flows == 0
        cols = [to_columns(c) for c in chunks]
        passes.append(sorted(
            (str(c["src_ip"][i]), int(c["src_port"][i]), str(c["dst_ip"][i]), int(c["dst_port"][i]),
             int(c["bidirectional_packets"][i]), int(c["bidirectional_bytes"][i]), int(c["expiration_id"][i]))
            for c in cols for i in range(len(c["id"]))))
        ids = sorted(int(x) for c in cols for x in c["id"])
        assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert passes[0] == passes[1] and len(passes[0]) > 4


@pytest.mark.parametrize("inspect", [False, True], ids=["no-inspect", "inspect"])
def test_entries_touched_follow_live_flows_not_flows_seen(tmp_path, inspect):
    """3,000 one-packet flows, 20 a second, idle timeout 1 s: about 20 live
    at once. Entries are reused (freed ones before never-used ones), so the
    entries ever taken stay near that, not 3,000: the table's memory that a
    long run touches follows the flows live at once, not its capacity. With
    inspection the reuse waits for the segment that freed an entry to end."""
    from ulnet.flow import _kernels as K
    from ulnet.pipeline import Pipeline
    from ulnet.inspect import Inspector

    n = 3000
    pk = [_pkt(k * 0.05, sport=1024 + k % 60000, dport=53, payload=b"q" * 20) for k in range(n)]
    path = _write(tmp_path, pk)
    t = FlowTable(100_000, idle_timeout=1.0)
    p = Pipeline([str(path)], flows=t, inspector=Inspector() if inspect else None, batch_size=64)
    ended = 0
    for _b in p:
        ended += sum(len(c) for c in p.take_ended())
    ended += sum(len(c) for c in p.finish_flows())
    assert ended == n
    assert int(t.S[K.S_HWM]) <= 100, int(t.S[K.S_HWM])


def test_flows_command_does_not_import_pandas(tmp_path):
    """pa.array() imports pandas (0.1 s of start-up); record columns go to Arrow without it."""
    code = ("import sys; from ulnet.cli.main import main; "
            f"main(['flows', '--format', 'csv', '-o', {str(tmp_path / 'o.csv')!r}, {str(SAMPLE)!r}]); "
            "sys.exit(3 if 'pandas' in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode()[-500:]
    assert (tmp_path / "o.csv").read_text().count("\n") == 10      # header + 9 flows


def test_a_command_imports_only_its_own_module():
    """Start-up: `ulnet flows` does not import the live commands' modules."""
    code = ("import sys; from ulnet.cli.main import build_parser; build_parser('flows'); "
            "bad = [m for m in ('ulnet.cli.bridge', 'ulnet.cli.capture', 'ulnet.cli.check', 'ulnet.cli.replay') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad or 'ulnet.cli.flows' not in sys.modules else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()[-500:]


@pytest.mark.parametrize("name", ["jabber.pcap", "quic_frags_ch_out_of_order_same_packet_craziness.pcapng",
                                  "dns_fragmented.pcap", "skype-conference-call.pcap",
                                  "netflix.pcap", "waze.pcap"])
def test_full_table_output_independent_of_batch_size(name):
    """A full table (8 entries) on real traffic: flows time out while packets
    of theirs in the same batch are not inspected yet, and entries are reused
    at once. Batch size 1 (each packet inspected before the next) is the
    reference; a large batch must give the same bytes."""
    path = next(p for p in NDPI_PCAPS if p.name == name)
    out = [run_ulnet("flows", "--format", "csv", "--max-flows", 8, "--statistics", "--batch-size", bs, path,
                     check=True).stdout for bs in (1, 4096)]
    assert out[0].count(b"\n") >= 2 and out[0] == out[1]


def test_fragments_of_datagrams_in_flight_together_join_whatever_the_seed(tmp_path):
    """128 fragmented datagrams whose first fragments all come before the
    rest: each later fragment must find its datagram's flow for every hash
    seed (a one-slot-per-hash map lost some, a different number per seed)."""
    from scapy.all import fragment
    from ulnet.counters import C_FLOW_FRAG_ORPHAN, C_FLOW_FRAG_JOINED
    from ulnet.pipeline import Pipeline

    firsts, rests = [], []
    for k in range(128):
        p = IP(src=A, dst=f"198.51.{k // 100}.{k % 100 + 1}", id=1000 + k) / UDP(sport=4000 + k, dport=53) / \
            Raw(bytes(2000))
        fr = fragment(p, fragsize=1000)
        for j, f in enumerate(fr):
            f = Ether() / f
            f.time = 1 + k * 0.001 + (0.5 if j else 0)
            (rests if j else firsts).append(f)
    path = _write(tmp_path, firsts + rests)
    for seed in (1, 2, 3, 4):
        t = FlowTable(1024, seed=seed)
        pipe = Pipeline([str(path)], flows=t)
        for _ in pipe:
            pass
        list(pipe.finish_flows())
        assert pipe.counters[C_FLOW_FRAG_ORPHAN] == 0, seed
        assert pipe.counters[C_FLOW_FRAG_JOINED] == len(rests), seed


@pytest.mark.parametrize("stats", [[], ["--statistics"]])
def test_parquet_without_any_flow_is_still_parquet(tmp_path, stats):
    """A filter that keeps no packet: a Parquet file with no rows and the
    same schema as a run with flows (not an empty file no reader opens)."""
    empty, full = tmp_path / "e.parquet", tmp_path / "f.parquet"
    run_ulnet("flows", "--format", "parquet", *stats, "-o", empty, SAMPLE, "port", "1", check=True)
    run_ulnet("flows", "--format", "parquet", *stats, "-o", full, SAMPLE, check=True)
    e, f = pq.read_table(empty), pq.read_table(full)
    assert e.num_rows == 0 and f.num_rows > 0
    assert e.schema.equals(f.schema)


def test_export_rows_reused_carry_no_stale_names(tmp_path):
    """Export rows are reused chunk after chunk and the kernel writes the
    metadata only of flows that have names: a flow without one, in a chunk
    with named flows, must not show the name an earlier chunk left in its
    row (each ended flow drained at once, as live capture does)."""
    from scapy.all import DNS, DNSQR
    from ulnet.flow.records import to_columns
    from ulnet.inspect import Inspector
    from ulnet.pipeline import Pipeline

    def dns(t, name, sport):
        p = Ether() / IP(src=A, dst=B) / UDP(sport=sport, dport=53) / DNS(rd=1, qd=DNSQR(qname=name))
        p.time = t
        return p

    pkts = [dns(0, "stale.example", 3333),
            _pkt(200, sport=5000, dport=9999, payload=b"plain"),  # no name; ends the first DNS flow (row 0)
            dns(202, "fresh.example", 4444),
            _pkt(500, sport=7002, dport=7003)]                   # ends both: the next chunk, rows 0 and 1
    path = _write(tmp_path, pkts)
    t = FlowTable(64)
    t.drain_rows = 1
    p = Pipeline([str(path)], batch_size=1, flows=t, inspector=Inspector())
    chunks = []
    for _b in p:
        chunks += p.take_ended()
    chunks += list(p.finish_flows())
    names = {}
    for c in chunks:
        cols = to_columns(c)
        for i in range(len(cols["id"])):
            names[int(cols["src_port"][i])] = (str(cols["requested_server_name"][i]), int(cols["dns_query_type"][i]))
    assert names[3333] == ("stale.example", 1)
    assert names[4444] == ("fresh.example", 1)
    assert names[5000] == ("", 0)
    assert len(chunks) >= 3


@pytest.mark.parametrize("tuned", [True, False], ids=["tuned", "glibc-default"])
def test_chunk_sized_arrays_reuse_freed_heap(tuned):
    """After cli.main.tune_malloc, an array of a record chunk's size (16 MB)
    allocated again after it was freed reuses the heap: (almost) no page
    faults; with glibc's defaults it is mapped fresh and faulted in again,
    4,096 pages (the control: the measure can tell the two apart)."""
    code = f"""
import resource, numpy as np
from ulnet.cli.main import tune_malloc
assert tune_malloc() if {tuned} else True
np._core.multiarray._set_madvise_hugepage(False)   # 4 KiB pages: one fault each
a = np.ones(2 << 20); del a
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
a = np.ones(2 << 20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    faults = int(out.stdout.split()[-1])
    assert (faults < 100) if tuned else (faults >= 4000), faults


def test_interrupted_segment_still_exports_every_flow_once(tmp_path):
    """A flow that times out while its payload in the segment awaits
    inspection has its export row reserved, filled once inspection ran.
    When inspection never runs (SIGINT/SIGTERM raised inside it), the final
    flush must still export that flow exactly once, with its own fields,
    and every other flow once."""
    from ulnet.flow.records import to_columns
    from ulnet.inspect import Inspector
    from ulnet.pipeline import Pipeline

    pkts = [_pkt(0, sport=1111, dport=2222, payload=b"hello"),    # A: payload, then idle
            _pkt(200, sport=3333, dport=4444, payload=b"world")]  # B: A is due before it
    path = _write(tmp_path, pkts)
    t = FlowTable(16)
    insp = Inspector()

    def interrupted(*a, **k):
        raise KeyboardInterrupt
    insp.process = interrupted
    p = Pipeline([str(path)], batch_size=2, flows=t, inspector=insp)
    with pytest.raises(KeyboardInterrupt):
        for _b in p:
            pass
    assert t.S[12] == 1          # S_NRES: A's row is reserved, not filled
    rows = []
    for c in list(p.finish_flows()):
        cols = to_columns(c)
        rows += [(int(cols["src_port"][i]), int(cols["expiration_id"][i]), int(cols["src2dst_packets"][i]),
                  int(cols["src2dst_bytes"][i]), int(cols["id"][i])) for i in range(len(cols["id"]))]
    assert sorted(rows) == [(1111, 0, 1, 47, 0), (3333, -1, 1, 47, 1)], rows
    assert t.active_flows == 0


def test_sigterm_during_a_write_loses_and_cuts_no_record(tmp_path, monkeypatch):
    """SIGTERM arriving while a chunk of records is being written (here: sent
    from inside the writer) waits until the chunk is written and out of the
    pipeline: the run ends with 130, every flow it created is in the file
    exactly once (ids 0..n-1), every line whole, and the flows that had
    ended are as a clean run writes them. (Before, the signal raised inside
    the write and the chunks taken for writing were lost.)"""
    import ulnet.flow as FL
    import ulnet.sinks.flows as SF
    from ulnet.cli.main import main
    from conftest import CORPUS, signal_on_call

    cap = str(CORPUS / "ndpi" / "pcap" / "reddit.pcap")
    args = ["flows", cap, "--idle-timeout", "0.001", "--format", "csv"]
    monkeypatch.setattr(FL, "EXPORT_ROWS", 8)          # chunks of 4 flows: many writes during the run
    assert main(args + ["-o", str(tmp_path / "clean.csv")]) == 0
    _, calls = signal_on_call(monkeypatch, SF.FlowWriter, "write", 3, signal.SIGTERM)
    assert main(args + ["-o", str(tmp_path / "term.csv")]) == 130

    def records(name):
        with open(tmp_path / name, newline="") as f:
            rows = list(csv.DictReader(f))
        assert all(len(r) == len(rows[0]) and None not in r.values() for r in rows)
        return rows
    clean = {r["id"]: r for r in records("clean.csv")}
    term = records("term.csv")
    assert len(clean) > 100 and calls[0] > 3 and len(term) > 8
    assert sorted(int(r["id"]) for r in term) == list(range(len(term)))
    ended = [r for r in term if r["expiration_id"] != "-1"]
    assert len(ended) >= 8 and all(r == clean[r["id"]] for r in ended)
