"""breakglass: rollback runbooks and emergency procedures as planned, resumable, audited runs."""

__version__ = "0.1.0"
