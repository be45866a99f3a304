"""Mailed patch series, read as lists send them (the reports stage: the reply answers one)."""
