"""Fuzz-test sizes: brief in the suite, longer on demand.

GNET_FUZZ_SCALE=50 .venv/bin/python -m pytest tests -k fuzz    # 50× the examples
"""

import os

from hypothesis import HealthCheck, settings


def fuzz_settings(examples: int) -> settings:
    scale = max(1, int(os.environ.get("GNET_FUZZ_SCALE", "1")))
    return settings(
        max_examples=examples * scale,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
