"""Turning results into text, JSON, markdown and JUnit: no I/O beyond strings."""
