"""Build-time model pipeline: export, training, evaluation, bundling, SageMaker entrypoint.

Imports torch and friends; never imported by the Lambda functions.
"""
