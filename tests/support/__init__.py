"""Test helpers shared by every test package and by bench/: paths, events, the Lambda context, settings,
log and metric capture. Conftest files keep only fixtures; they import their helpers from here."""
