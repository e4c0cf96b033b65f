"""What a worker's browser gets: Jinja and ${var} task pages, JS bundles, and the template gallery."""
