"""Platform config: model (`model`), loading (`loading`), secret references (`secrets`)
and redaction (`redaction`). Import the submodules directly; this package imports nothing
so that light commands stay fast."""
