"""Who may do what: accounts and their credentials, two-step login, permissions, substitutions."""
