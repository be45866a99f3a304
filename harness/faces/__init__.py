"""What users touch: the command line and the pytest plugin."""
