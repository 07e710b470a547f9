from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")

import sys

sys.path.insert(0, os.path.dirname(__file__))

from redis_server import private_redis  # noqa: E402,F401  (a fixture for every test module)
