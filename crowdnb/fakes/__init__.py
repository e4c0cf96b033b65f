"""Local fakes of crowd platforms, speaking their real wire protocols, for tests and dry runs."""
