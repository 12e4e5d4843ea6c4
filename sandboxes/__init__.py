"""Stand-ins for the partners (payment gateway, Kepler supplier, carrier): run by `make run`
and the tests, never imported by production code."""
