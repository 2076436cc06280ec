"""What staff reach for all day in the console: saved views of the ticket list, canned
replies and macros (issue 15)."""
