"""PR-time checks: syntax (parse once), schema and policy, over one file at a time."""
