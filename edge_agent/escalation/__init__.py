"""Escalation: frames the edge is unsure of, as JPEG crops, to the accurate model through a transport."""
