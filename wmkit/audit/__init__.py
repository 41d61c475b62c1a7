"""Checkpoint audit: discriminability, geometry probes, memorisation warnings, reports."""
