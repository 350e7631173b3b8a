"""The learning loop's logic: model registry, feedback export, training jobs, the promotion gate.

Layout of the model bucket (prefixes are settings; see infra/config.py):

    models/<version>/model.tar.gz      a verified bundle (what SageMaker writes, files at the root)
    models/<version>/manifest.json     the registry's record: bundle manifest, label set, where it came from
    decisions/<time>-<action>-<version>.json   one immutable record per promotion, rejection, rollback, ...
    training/base/ , training/holdout/        base training data and the fixed hold-out (uploaded once)
    training/feedback/<job>/train/            the feedback channel exported for one job
    training/feedback/<job>/export.json       what the export kept, refused and why
    training-jobs/<job>/output/model.tar.gz   SageMaker's job output

No module here imports torch: the Lambda functions run this code. The local runner (local_training) starts
the training entrypoint as a subprocess.
"""
