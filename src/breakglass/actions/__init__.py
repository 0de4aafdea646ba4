"""Actions: the steps a runbook can take, grouped by provider."""
