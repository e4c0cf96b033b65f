"""The review web app: a token-protected page for reviewing, deciding and exporting a project's runs."""
