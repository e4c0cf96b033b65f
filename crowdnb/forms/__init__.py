"""Mephisto-compatible form configs: the model, field rules, tokens, rendering to a task page, and the form tools of the command line."""
