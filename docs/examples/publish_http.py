"""Publish one event to the gateway over HTTP, with nothing but the standard library.

Usage: GATEWAY_URL=http://127.0.0.1:8000 SERVICE_TOKEN=... python publish_http.py PROJECT_ID
"""

import json
import os
import sys
import urllib.error
import urllib.request

event = {
    "type": "workflow.progress",
    "source": "workflow_service",
    "data": {
        "workflow_id": "880e8400-e29b-41d4-a716-446655440003",
        "project_id": sys.argv[1],
        "status": "running",
        "progress": 45,
        "current_step": "Analyzing code structure",
        "total_steps": 10,
    },
}
request = urllib.request.Request(
    os.environ["GATEWAY_URL"] + "/api/v1/events",
    data=json.dumps(event).encode(),
    headers={"Authorization": "Bearer " + os.environ["SERVICE_TOKEN"], "Content-Type": "application/json"},
    method="POST",
)
try:
    with urllib.request.urlopen(request) as response:
        print(response.status, json.load(response))  # 202 {"id": ..., "type": ..., "rooms": [...]}
except urllib.error.HTTPError as error:
    print(error.code, json.load(error))  # 422 {"error_code": "INVALID_EVENT", "errors": [...]}
    sys.exit(1)
