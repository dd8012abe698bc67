"""Argument checks shared across the package (one wording for the same mistake everywhere)."""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["check_int", "check_positive_int", "check_positive_ints", "check_probability", "shape_or_type"]


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


def check_int(value: int, name: str, minimum: int) -> int:
    """``value`` as an int ``>= minimum``; TypeError/ValueError naming ``name`` otherwise.

    Accepts NumPy integers (the RL code indexes with them).

    Args:
        value: The argument to check.
        name: The argument's name, for the message.
        minimum: The smallest allowed value.

    Returns:
        ``int(value)``.

    Raises:
        TypeError: If ``value`` is not an integer (or is a bool).
        ValueError: If ``value < minimum``.

    Examples:
        >>> check_int(np.int64(3), "episodes", 1)
        3
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_probability(value: float, name: str) -> float:
    """``value`` as a float in ``[0, 1]``; TypeError/ValueError naming ``name`` otherwise.

    Args:
        value: The argument to check.
        name: The argument's name, for the message.

    Returns:
        ``float(value)``.

    Raises:
        TypeError: If ``value`` is not a real number (or is a bool).
        ValueError: If ``value`` lies outside ``[0, 1]``.

    Examples:
        >>> check_probability(0.25, "epsilon")
        0.25
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number in [0, 1], got {type(value).__name__}")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def shape_or_type(value: object) -> str:
    """``"shape (2, 3)"`` for a tensor, else the type's name: what an error message says was given.

    Args:
        value: The offending argument.

    Returns:
        A short description.

    Examples:
        >>> shape_or_type([1, 2])
        'list'
    """
    return f"shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else type(value).__name__
