"""HTTP routes of the gateway, one blueprint per concern."""

from swe_realtime.http.docs import docs_blueprint
from swe_realtime.http.health import health_blueprint
from swe_realtime.http.inspector import inspector_blueprint
from swe_realtime.http.metrics import metrics_blueprint
from swe_realtime.http.publish import publish_blueprint
from swe_realtime.http.stats import stats_blueprint

__all__ = [
    "docs_blueprint",
    "health_blueprint",
    "inspector_blueprint",
    "metrics_blueprint",
    "publish_blueprint",
    "stats_blueprint",
]
