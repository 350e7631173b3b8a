"""The S3 batch job: notification -> stream the object -> classify -> results, errors, manifest."""
