"""sinks -- where packets and records go: capture writers (pcap, pcapng),
per-packet text/JSON lines, and (later) flow records and TX rings."""
