"""Local servers speaking provider wire formats for the provider tests."""
