"""Service levels: working-hours calendars, the two clocks of a ticket, the watch that warns.

The business-time engine is this package's public face for tests and scripts
(``from core.sla import BusinessCalendar``); it lives in :mod:`core.sla.calendar`, which
imports nothing but ``core.errors``, so importing it here costs no other module.
"""

from core.sla.calendar import BusinessCalendar, CalendarError, format_duration, parse_duration

__all__ = ["BusinessCalendar", "CalendarError", "format_duration", "parse_duration"]
