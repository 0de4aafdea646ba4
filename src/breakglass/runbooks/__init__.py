"""Runbooks: model, loading, templating, lint and the built-in catalog."""
