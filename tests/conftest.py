import numpy as np
import pytest


@pytest.fixture
def rng():
    """A seeded generator, so every random test is reproducible."""
    return np.random.default_rng(20260229)


def taylor_slope(f, grad_dot, ts=None):
    """Slope of log|f(t) - f(0) - t <g, v>| against log t; about 2 for a correct gradient.

    ``f(t)`` evaluates the function along a curve, ``grad_dot`` is the directional
    derivative at t = 0 predicted by the gradient under test.
    """
    ts = np.logspace(-5, -2, 7) if ts is None else ts
    f0 = f(0.0)
    err = np.array([abs(f(t) - f0 - t * grad_dot) for t in ts])
    return np.polyfit(np.log(ts), np.log(err), 1)[0]
