"""Incidents: severity and deadlines, the timeline, escalation and communication."""
