"""Finding the submodules a PEFT method should modify, and swapping them in place.

Shared by LoRA and adapters: targets are named by the *last* component of their path
(``"q_proj"`` matches ``blocks.0.attn.q_proj`` and ``model.layers.3.self_attn.q_proj``
alike), or chosen by a predicate on ``(qualified_name, module)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

__all__ = ["find_targets", "replace_submodule", "wrap_linear_targets"]

Targets = Iterable[str] | str | Callable[[str, nn.Module], bool]


def find_targets(model: nn.Module, target_modules: Targets) -> list[tuple[str, nn.Module]]:
    """The ``(qualified_name, module)`` pairs of ``model`` selected by ``target_modules``.

    Args:
        model: Any module.
        target_modules: A name, an iterable of names (matched on the last path
            component), or a predicate ``(qualified_name, module) -> bool``.

    Returns:
        The matches, in ``named_modules`` order (the root itself is never a target).

    Raises:
        ValueError: If nothing matches, the list of names is empty, or a given name
            matches no submodule.
    """
    if callable(target_modules):
        matches = [(name, module) for name, module in model.named_modules() if name and target_modules(name, module)]
        if not matches:
            raise ValueError(f"no submodule of {type(model).__name__} satisfies the target predicate")
        return matches
    wanted = {target_modules} if isinstance(target_modules, str) else set(target_modules)
    if not wanted:
        raise ValueError("target_modules must name at least one module")
    matches = [(name, module) for name, module in model.named_modules() if name and name.rsplit(".", 1)[-1] in wanted]
    missing = wanted - {name.rsplit(".", 1)[-1] for name, _ in matches}
    if missing:
        raise ValueError(f"target_modules {sorted(missing)} match no submodule of {type(model).__name__}")
    return matches


def replace_submodule(model: nn.Module, qualified_name: str, new: nn.Module) -> None:
    """Put ``new`` where ``model.get_submodule(qualified_name)`` was."""
    parent_name, _, child = qualified_name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def wrap_linear_targets(
    model: nn.Module,
    target_modules: Targets,
    wrap: Callable[[nn.Linear], nn.Module],
    wrapper_type: type[nn.Module],
    method: str,
) -> nn.Module:
    """Freeze ``model`` and replace each targeted ``nn.Linear`` by ``wrap(linear)``.

    Everything is checked before anything changes, so a failed call leaves the model as
    it was. Layers already inside a ``wrapper_type`` are never targets themselves.

    Args:
        model: The model to modify in place.
        target_modules: See :func:`find_targets`.
        wrap: Builds the replacement of one linear layer.
        wrapper_type: The class ``wrap`` returns (to refuse wrapping twice).
        method: Name of the method for error messages, e.g. ``"LoRA"``.

    Returns:
        The model, whose original parameters no longer require gradients.

    Raises:
        ValueError: If nothing matches (see :func:`find_targets`) or a target already
            carries the method.
        TypeError: If a target is not an ``nn.Linear``.
    """
    matches = [
        (name, module)
        for name, module in find_targets(model, target_modules)
        if not isinstance(model.get_submodule(name.rpartition(".")[0]), wrapper_type)
    ]
    for name, module in matches:
        if isinstance(module, wrapper_type):
            raise ValueError(f"target {name!r} already carries {method}")
        if not isinstance(module, nn.Linear):
            raise TypeError(f"target {name!r} is a {type(module).__name__}; {method} can only wrap nn.Linear layers")
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for name, module in matches:
        replace_submodule(model, name, wrap(module))
    return model
