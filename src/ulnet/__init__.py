"""ulnet: userland networking in Python.

Packets from capture files (and, later, AF_PACKET rings) move through the
stages in batches: decode -> flow -> inspect -> policy -> actions.

    import ulnet
    df = ulnet.flows("trace.pcap").to_pandas()
"""

__version__ = "0.1.0"


def flows(source, **options):
    """Flow records of a capture (see ulnet.api.FlowRecords)."""
    from ulnet.api import flows as _flows
    return _flows(source, **options)


__all__ = ["flows", "__version__"]
