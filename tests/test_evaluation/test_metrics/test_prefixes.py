"""MMEngine logs a warning at every evaluation ("The prefix is not set in metric class ...")
for a metric whose prefix is None: every medtrans metric has one, empty where its names are the
paper's."""
import pytest

import medtrans.evaluation  # noqa: F401 (registers the metrics)
from medtrans.registry import METRICS


@pytest.mark.parametrize('name', sorted(METRICS.module_dict))
def test_every_metric_has_a_prefix(name):
    assert METRICS.get(name).default_prefix is not None
