"""Reproducible benchmarks; each prints the ratio it is judged by."""
