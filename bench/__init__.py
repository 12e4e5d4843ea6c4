"""Benchmarks; their figures go in the README."""
