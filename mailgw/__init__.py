"""The mail gateway: mail in (SMTP server, IMAP pollers, parsing, threading, routing to a
ticket) and mail out (rendering and sending what ``core.mail.outbox`` queued, in
:mod:`mailgw.outbound`).

Imports ``core`` and nothing else of ours; ``web`` and ``mailgw`` never import each other.
Nothing here does work at import time.
"""
