"""Shipped recipes (TOML). ``wmkit recipes`` lists them."""
