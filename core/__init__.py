"""Pulpit's domain: tickets, contracts, SLA clocks, permissions and the database.

Nothing here imports the entry points (``web``, ``mailgw``, ``workers``).
"""
