"""The embedded store and ``tokentrace report``."""
