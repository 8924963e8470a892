"""The HTTP routes, one router per resource; ``create_app`` includes them in this order.

::

    health      GET  /healthz, /readyz, /metrics
    jobs        POST /v1/jobs; GET /v1/jobs/{id}, .../results, .../events; POST .../cancel
    turns       POST /v1/graphs/{name}/invoke   (real-time turns)
    graphs      GET  /v1/graphs
    skills      GET  /v1/skills[/{name}]; POST /v1/skills/{name}/promote, .../rollback
    dashboard   GET  /ui, /ui/static/..., /v1/dashboard/...
    reviews     GET  /v1/reviews[/{id}]; POST /v1/reviews/{id}/answer

Handlers reach the service and the caller's key through :mod:`orchestrator.service.deps`.
"""
