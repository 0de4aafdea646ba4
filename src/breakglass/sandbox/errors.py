"""The error `breakglass sandbox` and the demo raise when the local platform cannot be set up."""

from __future__ import annotations

from breakglass.errors import BreakglassError


class PlatformError(BreakglassError):
    """A sandbox platform that cannot start, stop or be found; its message names the fix."""
