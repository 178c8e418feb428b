"""Benchmarks: scripts that print numbers (`python -m benchmarks.<name>`). Never timed unit tests."""
