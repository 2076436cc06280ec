"""Service levels: working-hours calendars, the two clocks of a ticket, the watch that warns."""
