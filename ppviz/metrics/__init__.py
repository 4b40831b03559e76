"""Metrics with written contracts (dims in, dims out, units, NaN and dry-cell policy)."""
