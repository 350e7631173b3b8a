"""The `categorizer` command line."""
