"""Tickets: their models, the services that change them, the timeline, copied contacts, queries."""
