"""The categorizer CDK app: stage config (config.py), constructs (components/), the stack and the app."""
