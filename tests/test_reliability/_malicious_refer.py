# Copyright (c) mmris contributors. All rights reserved.
"""Crafted malicious REFER ``refs(*).p`` pickles for the loader tests.

Every payload, if unpickled, writes a marker file; the tests assert that the
marker never appears and that the error names the file and the global.

* ``py3_reduce``: a ref whose sentence is a ``__reduce__`` payload
  ``open(marker, 'w')`` (Python 3 pickler, protocol 2).
* ``py2_os_system``: hand-written Python 2 protocol 0, ``os.system('touch
  marker')`` through ``GLOBAL`` + ``REDUCE``.
* ``py2_builtin_eval``: hand-written Python 2 protocol 2 (``SHORT_BINSTRING``
  keys), ``__builtin__.eval`` of a ``BINSTRING`` opening the marker.
"""
import pickle
import shlex


class _OpenFile:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def malicious_refs(kind: str, marker: str) -> bytes:
    """A refs pickle whose payload writes ``marker`` when unpickled.

    :data:`REFUSED` holds the global the loader must name.
    """
    if kind == 'py3_reduce':
        return pickle.dumps([
            dict(
                ref_id=0, ann_id=0, split='val', sentences=[_OpenFile(marker)])
        ],
                            protocol=2)
    if kind == 'py2_os_system':  # hand-written protocol 0, Python 2 style
        cmd = f'touch {shlex.quote(marker)}'.encode()
        return (b"(lp0\n(dp1\nS'ref_id'\np2\nI0\nsS'split'\np3\nS'val'\n"
                b"p4\nsS'sentences'\np5\ncos\nsystem\np6\n(S" +
                repr(cmd)[1:].encode() + b"\np7\ntp8\nRp9\nsa.")
    if kind == 'py2_builtin_eval':  # protocol 2, GLOBAL '__builtin__ eval'
        code = f"open({marker!r}, 'w')".encode()
        return (b'\x80\x02]q\x00}q\x01(U\x06ref_idq\x02K\x00U\x05splitq\x03'
                b'U\x03valq\x04U\tsentencesq\x05c__builtin__\neval\nq\x06'
                b'T' + len(code).to_bytes(4, 'little') + code +
                b'\x85q\x07Rq\x08ua.')
    raise ValueError(kind)


#: payload kind -> the global the loader must name.
REFUSED = dict(
    py3_reduce='io.open',  # builtins.open is io.open
    py2_os_system='os.system',
    py2_builtin_eval='__builtin__.eval')
