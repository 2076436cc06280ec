"""Settings loading and the example declarative configurations."""
