"""Work time: the work log entries technicians record on tickets, the contracts' work types
with their rates, and the timer on the ticket page (issue 14)."""
