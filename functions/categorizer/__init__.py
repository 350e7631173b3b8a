"""categorizer runtime: the code every Lambda function ships (engine, file formats, API, batch, registry)."""
