"""The command-line interface: parses, presents, and leaves every decision to the engine."""
