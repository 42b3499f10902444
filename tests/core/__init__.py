"""Core pieces with no SDK in the loop."""
