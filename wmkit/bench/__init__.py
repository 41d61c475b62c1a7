"""Benchmarks: training speed, audit speed, edit retrieval."""
