from peek import Peek


def test_it_is_a_skill() -> None:
    assert Peek.name == "peek"
