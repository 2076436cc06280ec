"""Contracts and their ticket types, statuses and custom fields."""
