"""The Litestar application: JSON API, server-rendered console and the client portal."""
