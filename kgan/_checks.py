"""Argument checks shared by kgan's modules."""

import numbers


def positive_int(value, name):
    """`value` as an int if it is an integer >= 1.

    Raises:
        TypeError: for a non-integer (bools included: `num=True` is a mistake).
        ValueError: for an integer below 1.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r}.")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, got {value}.")
    return int(value)
