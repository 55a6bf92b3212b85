"""HTTP routes of the gateway, one blueprint per concern."""

from server.http.docs import docs_blueprint
from server.http.health import health_blueprint
from server.http.inspector import inspector_blueprint
from server.http.metrics import metrics_blueprint
from server.http.publish import publish_blueprint
from server.http.stats import stats_blueprint

__all__ = [
    "docs_blueprint",
    "health_blueprint",
    "inspector_blueprint",
    "metrics_blueprint",
    "publish_blueprint",
    "stats_blueprint",
]
