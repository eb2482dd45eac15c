import pytest

from halve import Halve, HalveInput


def test_an_even_number_is_halved() -> None:
    assert Halve().execute(HalveInput(n=10)).half == 5


def test_an_odd_number_is_refused() -> None:
    with pytest.raises(ValueError, match="odd"):
        Halve().execute(HalveInput(n=7))
