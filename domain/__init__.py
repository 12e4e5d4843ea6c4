"""Pure order rules and the data that crosses boundaries. No I/O in this package."""
