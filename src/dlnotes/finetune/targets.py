"""Finding the submodules a PEFT method should modify, and swapping them in place.

Shared by LoRA and adapters: targets are named by the *last* component of their path
(``"q_proj"`` matches ``blocks.0.attn.q_proj`` and ``model.layers.3.self_attn.q_proj``
alike), or chosen by a predicate on ``(qualified_name, module)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

__all__ = ["find_targets", "replace_submodule"]

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
