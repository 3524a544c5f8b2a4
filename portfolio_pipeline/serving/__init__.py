"""Serving: the warehouse's answer behind a read-only REST API, a dashboard and metrics.

``config`` (host, port, token, freshness limit), ``snapshot`` (read-only connections to the
published warehouse, reopened when a run publishes a new file), ``queries`` (tables ->
pydantic ``models``), ``plots`` (inline SVG), ``dashboard`` (the one-page HTML), ``metrics``
(Prometheus collectors), ``app`` and ``routes`` (the FastAPI app) are pure: no dagster.
``dagster_runs`` reads the Dagster instance (wiring); ``cli/serve.py`` hands it to the app.
"""
