"""Scaling-law analysis: pure functions over pandas DataFrames (never imports Ray or torch)."""
