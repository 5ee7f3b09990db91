#!/usr/bin/env python3
"""Rewrite tests/golden/ndpi_flow_differences.tsv from a fresh comparison.

Run only after checking each new difference by hand; every line needs a
reason in REASONS (by capture) or the script refuses.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from compare_flows import compare, difference_line  # noqa: E402

ROOT = HERE.parent.parent
NDPI = (ROOT / ".." / "shared" / "corpus" / "ndpi").resolve()
OUT = ROOT / "tests" / "golden" / "ndpi_flow_differences.tsv"

REASONS = {
    "teredo.pcap": "ulnet decapsulates Teredo and tracks the inner IPv6 flow; ndpiReader keys the outer UDP flow",
    "pinterest.pcap": "nDPI prints an invalid IPv6 address (2600:1901::7a0b::), so no endpoint can match",
    "stun.pcap": "nDPI prints an invalid IPv6 address (2600:1900:4160:5999::19::), so no endpoint can match",
    "rtsp.pcap": "a SYN reuses the 5-tuple of a closed TCP connection: ulnet starts a new flow, ndpiReader keeps one",
    "fins.pcap": "frames carry 4 bytes of Ethernet trailer counted by tshark and ulnet in the wire length; ndpiReader counts 4 bytes less",
    "ip_fragmented_garbage.pcap": "garbage fragments: ulnet keys non-first fragments with no first fragment on a port-less flow and, with fragments='first', skips them",
    "ndpi_match_string_subprotocol__error.pcapng": "ndpiReader drops a packet it considers malformed; ulnet counts it",
    "reasm_crash_anon.pcapng": "ndpiReader drops packets it considers malformed; ulnet counts them",
    "tls_invalid_reads.pcap": "ndpiReader drops a packet it considers malformed; ulnet counts it",
    "collectd.pcap": "timestamps jump 22 years inside one flow",
}
FUZZ_REASON = "fuzzed capture: malformed headers that ndpiReader and ulnet read differently"


def main():
    lines = []
    for p in sorted((NDPI / "pcap").glob("*")):
        r = NDPI / "result" / (p.name + ".out")
        if not r.exists():
            continue
        try:
            _, missing = compare(p, r)
        except Exception as e:   # capture ulnet cannot open: every nDPI flow is a difference
            print(f"{p.name}: {e}", file=sys.stderr)
            continue
        for fl, near in missing:
            reason = FUZZ_REASON if p.name.startswith("fuzz") else REASONS.get(p.name)
            if reason is None:
                sys.exit(f"no reason for a difference in {p.name}: {difference_line(p.name, fl, near)}")
            lines.append(difference_line(p.name, fl, near) + "\t" + reason)
    OUT.write_text("# capture\tnDPI flow\tclosest ulnet flow\treason\n" + "\n".join(lines) + "\n")
    print(f"{len(lines)} differences written to {OUT}")


if __name__ == "__main__":
    main()
