"""schemathesis over the server's /openapi.json: generated requests never make a server error.

The server runs with open access (loopback only) so that generated requests reach the
session logic instead of stopping at the token check; a bounded number of examples per
operation keeps the run under a minute.
"""

from __future__ import annotations

import os
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

import repertory
from repertory.server import ServerConfig, serve_in_thread

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def api_schema(ray_cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("schema")
    repertory.init(store=f"sqlite:///{tmp / 'state.db'}", num_hosts=1,
                   namespace=f"schema{os.getpid()}-{uuid.uuid4().hex[:8]}")
    handle = serve_in_thread(ServerConfig(port=0, insecure_no_auth=True, rate_limit=None,
                                          admin_key="admin-" + "k" * 20))
    base = handle.url.removesuffix("/agent")
    yield schemathesis.openapi.from_url(base + "/openapi.json")
    handle.stop()
    repertory.shutdown()


# Cases per operation: 8 in the default suite (~40 operations); raise it for a longer fuzz run.
EXAMPLES = int(os.environ.get("REPERTORY_SCHEMA_EXAMPLES", "8"))


def test_no_server_error(api_schema):
    # schemathesis' own pytest plugin does not load on this pytest; drive its strategies directly.
    checked = []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            response = case.call(timeout=30)
            assert response.status_code < 500, (case.method, case.formatted_path, response.status_code,
                                                response.text[:500])
            if response.status_code >= 400:  # every error answer is a structured error body
                assert set(response.json()["error"]) >= {"code", "message", "request_id"}

        check()
        checked.append(operation.label)
    assert len(checked) >= 20
