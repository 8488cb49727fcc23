import math

import numpy as np
import pytest

from scconvex import InvalidInputError, ProblemSpec


def test_counts_and_derived_fields():
    spec = ProblemSpec((3, 1, 3, 2), 0.5)
    assert spec.k == 4 and spec.n == 9
    assert spec.groups == ((3, 2), (2, 1), (1, 1))
    assert spec.repeated
    np.testing.assert_array_equal(spec.labels, [0, 0, 0, 1, 2, 2, 2, 3, 3])
    assert spec.constant == pytest.approx(2 * 3 * math.log(2) + 2 * math.log(1))


def test_from_labels_counts_each_class():
    spec = ProblemSpec.from_labels(["b", "a", "b", "c", "b"], tau=1.0)
    assert spec.counts == (1, 3, 1)


def test_step_convention():
    spec = ProblemSpec.step(10, 0.3, 4, 5, tau=0.1)
    assert spec.counts == (20,) * 3 + (5,) * 7


def test_long_tail_convention():
    spec = ProblemSpec.long_tail(5, 10, 1000, tau=0.1)
    expected = [math.floor(1000 * 10 ** (-c / 4)) for c in range(5)]
    expected[-1] = 100  # 1000 * 10**-1 is exactly 100 (floating point gives 99.999...)
    assert list(spec.counts) == expected
    assert spec.counts[0] / spec.counts[-1] == 10


def test_round_trip_dict():
    spec = ProblemSpec((4, 2), 0.25, level="class")
    assert ProblemSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("counts", [(5, 0), (5, -1), (5,), (), (1, 1), (2.5, 3), ("a", 2),
                                    ((2, 3), (4, 5)), (float("nan"), 3), (True, 2)])
def test_bad_counts(counts):
    with pytest.raises(InvalidInputError):
        ProblemSpec(counts, 1.0)


@pytest.mark.parametrize("tau", [0, -1, float("nan"), float("inf"), "x", None, True])
def test_bad_tau(tau):
    with pytest.raises(InvalidInputError):
        ProblemSpec((3, 3), tau)


@pytest.mark.parametrize("field,value", [("loss", "hinge"), ("relaxation", "box"),
                                         ("level", "galaxy")])
def test_unknown_options(field, value):
    with pytest.raises(InvalidInputError, match="unknown"):
        ProblemSpec((3, 3), 1.0, **{field: value})


def test_bad_constructor_arguments():
    with pytest.raises(InvalidInputError):
        ProblemSpec.step(10, 1.5, 10, 5, tau=1)
    with pytest.raises(InvalidInputError):
        ProblemSpec.step(10, 0.5, 0.5, 5, tau=1)
    with pytest.raises(InvalidInputError):
        ProblemSpec.long_tail(1, 10, 100, tau=1)
    with pytest.raises(InvalidInputError):
        ProblemSpec.from_dict({"counts": [3, 3], "tau": 1, "colour": "red"})
