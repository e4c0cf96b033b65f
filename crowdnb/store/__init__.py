"""The store: the only wing that touches SQLite (the database of record, its schema and migrations, the group-commit writer, unit and agent states, lifecycle transitions and read-side reports)."""
