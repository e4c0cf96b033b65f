"""Submissions as pandas DataFrames: the live frame of a run or task, its bulk builder, and exports (CSV, Parquet, JSONL)."""
