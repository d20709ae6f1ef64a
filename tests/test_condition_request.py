"""`--condition NAME=VALUE` against a model's declared conditions, empty categories included."""

from __future__ import annotations

import numpy as np
import pytest

from abr_tune.data.conditions import Conditions
from abr_tune.data.request import parse_pairs, resolve
from abr_tune.errors import UserError

# A lab's manifest leaves treatment blank on its baseline rows: '' is one of the categories.
LAB = Conditions(("intensity", "age"), ("dB SPL", "months"), ("treatment",), (("", "PSI"),))


def test_an_empty_value_asks_for_the_empty_category():
    static, labels = resolve(LAB, parse_pairs(["intensity=70", "age=3", "treatment="]), {})
    np.testing.assert_array_equal(static, [[70.0, 3.0]])
    assert labels.tolist() == [[""]]


def test_errors_list_the_empty_category_as_it_is_asked_for():
    with pytest.raises(UserError, match=r"treatment 'AAV' is not a category .* valid: \(empty: NAME=\), PSI"):
        resolve(LAB, parse_pairs(["intensity=70", "age=3", "treatment=AAV"]), {})
    with pytest.raises(UserError, match=r"no value for treatment: .* treatment: \(empty: NAME=\), PSI"):
        resolve(LAB, parse_pairs(["intensity=70", "age=3"]), {})


@pytest.mark.parametrize("pair", ["=70", "intensity"])
def test_a_pair_without_a_name_or_equals_sign_is_refused(pair):
    with pytest.raises(UserError, match="--condition takes NAME=VALUE"):
        parse_pairs([pair])


def test_an_empty_number_is_refused_in_its_unit():
    with pytest.raises(UserError, match=r"--condition intensity must be a number in dB SPL, got ''"):
        resolve(LAB, parse_pairs(["intensity=", "age=3", "treatment=PSI"]), {})
