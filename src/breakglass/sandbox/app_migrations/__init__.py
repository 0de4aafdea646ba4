"""The sample application's schema history: a small Alembic project the sandbox installs.

Each sandbox release of the backend ships with one head of this history (the releases
and their heads are in `breakglass.sandbox.platform`). The backend's migration Jobs run
`python -m alembic` on it, so the demo's migration rollback changes a real schema.
`env.py` connects through libpq's PG* variables, which the Jobs get from the
Deployment, as the platform's own migration tooling does.
"""

from pathlib import Path

SCRIPT_LOCATION = Path(__file__).parent
