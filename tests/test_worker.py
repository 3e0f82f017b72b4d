"""The worker's judgement of its peers: a database outage is not a worker dying."""

from __future__ import annotations

import pytest

from connector.server.worker import Steadiness

# Each case: a series of looks (answered, took, uptime, now); whether the last one may judge.
CASES = [
    ("first look, database long up", [(True, 0.01, 3600, 100.0)], True),
    ("database restarted 2 s ago", [(True, 0.01, 2.0, 100.0)], False),
    ("database up for the grace", [(True, 0.01, 6.0, 100.0)], True),
    ("unreachable", [(False, 0.0, 0.0, 100.0)], False),
    ("reachable again, too soon", [(False, 0.0, 0.0, 100.0), (True, 0.01, 3600, 105.0)], False),
    ("reachable again, steady", [(False, 0.0, 0.0, 100.0), (True, 0.01, 3600, 106.5)], True),
    ("a slow answer", [(True, 2.6, 3600, 100.0)], False),
    ("steady after a slow answer", [(True, 2.6, 3600, 100.0), (True, 0.01, 3600, 106.0)], True),
    ("an answer just under slow", [(True, 2.4, 3600, 100.0)], True),
]


@pytest.mark.parametrize(("looks", "judge"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_peers_are_judged_only_on_a_steady_database(looks, judge):
    steady = Steadiness(grace=6.0, slow=2.5)
    results = [steady.saw(*look) for look in looks]
    assert results[-1] is judge
