"""ulnet: userland networking in Python.

Packets from capture files (and, later, AF_PACKET rings) move through the
stages in batches: decode -> flow -> inspect -> policy -> actions.
"""

__version__ = "0.1.0"
