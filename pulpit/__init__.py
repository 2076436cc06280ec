"""Pulpit's composition root: the ``pulpit`` command and the all-in-one process.

This is the only package that wires ``core``, ``web``, ``mailgw`` and ``workers`` together;
those layers never import it.
"""
