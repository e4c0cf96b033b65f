"""The notebook skin: magics and widgets over the public API (live panel, review table, charts, previews)."""
