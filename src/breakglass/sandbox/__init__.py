"""Local stand-ins for the platforms breakglass acts on, for demos, drills and tests.

Nothing here is imported by the CLI, the engine or the actions at module level: the
sandbox needs the optional `sandbox` extra (kmock, moto), which production installs
do not carry.
"""
