"""The local stack: the whole system on an embedded AWS (moto in server mode) on 127.0.0.1.

Same handlers, same event shapes, same resource names and settings as the CDK app (infra.config), and real
Cognito-signed tokens. `categorizer up` starts it in the background; `categorizer down` stops it.
"""
