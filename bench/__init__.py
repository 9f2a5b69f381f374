"""Benchmarks of the show engine: ``python -m bench`` (or ``make bench``) runs them all, prints a
table and rewrites docs/benchmarks.md with the figures and the machine they were measured on."""
