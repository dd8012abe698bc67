"""Argument checks shared across the package (one wording for the same mistake everywhere)."""

from __future__ import annotations

__all__ = ["check_positive_int", "check_positive_ints"]


def check_positive_int(value: object, name: str) -> None:
    """Raise ``ValueError("<name> must be a positive integer, got <value>")`` unless ``value`` is an int >= 1.

    ``bool`` is rejected although it is an ``int`` subclass: ``True`` as a size is a bug.

    Args:
        value: The argument to check.
        name: The argument's name, for the message.

    Raises:
        ValueError: If ``value`` is not an int, is a bool, or is below 1.

    Examples:
        >>> check_positive_int(3, "steps")
        >>> check_positive_int(0, "steps")
        Traceback (most recent call last):
        ...
        ValueError: steps must be a positive integer, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_positive_ints(**values: object) -> None:
    """:func:`check_positive_int` for every keyword argument, in order.

    Args:
        **values: ``name=value`` pairs to check.

    Raises:
        ValueError: For the first value that is not a positive int.

    Examples:
        >>> check_positive_ints(d_model=8, n_layer=2)
    """
    for name, value in values.items():
        check_positive_int(value, name)
