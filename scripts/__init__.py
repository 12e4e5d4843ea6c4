"""Operator commands: `run` (everything, for `make run`) and `seed` (demo catalog)."""
