"""The HTTP API (API Gateway HTTP API + the ``api`` Lambda) and its local server (``stepcrew dev``).

- :mod:`stepcrew.api.app`: the Powertools resolver, its routes and error handlers (:func:`build_app`,
  :func:`app_from_env`).
- :mod:`stepcrew.api.errors`: the JSON error contract and status codes.
- :mod:`stepcrew.api.auth`: the tenant from the JWT authorizer's claims.
- :mod:`stepcrew.api.idempotency`: ``Idempotency-Key`` handling (Powertools idempotency on the run table).
- :mod:`stepcrew.api.openapi`: generates ``docs/openapi.json`` from the code.
- :mod:`stepcrew.api.dev`: ``serve()``, the local HTTP server behind ``stepcrew dev``.
"""
