"""File formats shared by the S3 batch function and the CLI: readers, writers, text columns."""
