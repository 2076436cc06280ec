"""Mail as data: inbound messages, the outbox, mailboxes, IMAP positions."""
