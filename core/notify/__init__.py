"""Who is told what: notifications, their recipients and preferences, delivery failures, login alerts."""
