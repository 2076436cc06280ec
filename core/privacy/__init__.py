"""Personal data (issue 11, GDPR / RODO): export everything about a person, erase a person,
anonymise old closed tickets. See docs/privacy.md."""
