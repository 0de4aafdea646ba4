"""The engine: planning, running, resuming, approvals, locks and events."""
