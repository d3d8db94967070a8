"""Transports that carry a roomcast app over a real wire (each needs its own extra)."""
