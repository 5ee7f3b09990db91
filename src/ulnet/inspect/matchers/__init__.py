"""Matchers: one function per application over the first payload bytes of
one direction. Signature (all of them):

    @njit(cache=True)
    def match_NAME(w, n, sp, dp, d) -> bool

``w``: first 32 payload bytes as 4 big-endian uint64 (see ulnet.inspect.words),
``n``: payload length, ``sp``/``dp``: this packet's source/destination port,
``d``: 0 when the packet comes from the flow's initiator (the client), 1 when
it comes back. Payload evidence first; a port may only narrow a weak
signature (say so in the docstring), never decide alone.
"""
