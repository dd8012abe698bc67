"""Give a function a public name with a decorator, the way TensorFlow's ``@tf_export`` does.

TensorFlow defines ``run`` in ``tensorflow/python/platform/app.py``, yet users call it as
``tf.app.run``. The link between the two is a decorator. ``tf_export`` is
``functools.partial(api_export, api_name="tensorflow")``; ``@tf_export("app.run")`` writes
the public name onto the function (as the attribute ``_tf_api_names``) and returns the
function unchanged. When TensorFlow is built, a generator imports every module, collects
the symbols that carry such names and writes the ``tf.*`` package tree from them.

This module is the same mechanism for dlnotes, in four steps:

1. ``api_export(*names, api="dlnotes")`` checks the names and returns a decorator;
   ``export = functools.partial(api_export, api="dlnotes")`` is what modules use.
2. The decorator records the names on the symbol (``__dlnotes_api_names__``) and in a
   registry keyed by API. One symbol may have several names (the first is canonical,
   the rest are aliases); a name claimed by a *different* symbol raises ``ValueError``.
3. :func:`exported_symbols`, :func:`api_tree` and :func:`build_api_module` read the
   registry back as a flat dict, a nested dict and a tree of real module objects.
4. :func:`generate_api_index` renders the registry as a Markdown table, and the command
   line keeps ``docs/reference/public-api.md`` equal to it.

Adding a public function to dlnotes takes two steps. Decorate it in its module::

    from dlnotes.foundations.api_export import export

    @export("algorithms.sliding_window_max")   # the first name is the canonical one
    def sliding_window_max(nums, k, method="deque"): ...

then regenerate the index page and commit it with the change::

    python -m dlnotes.foundations.api_export --write docs/reference/public-api.md

``tests/foundations/test_api_export.py`` fails until the committed page matches the
registry. Importing a decorated module has no effect besides registration: the
decorator returns the very object it was given.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import keyword
import pkgutil
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple, TypeVar

__all__ = [
    "DEFAULT_API",
    "OPTIONAL_DEPENDENCIES",
    "ImportedModules",
    "api_export",
    "api_names",
    "api_tree",
    "build_api_module",
    "export",
    "exported_symbols",
    "generate_api_index",
    "import_package_modules",
    "main",
]

Symbol = TypeVar("Symbol")

#: The API that :data:`export` registers into.
DEFAULT_API = "dlnotes"

#: Top-level packages that dlnotes may import but does not require (the ``kernels`` and
#: ``rl`` extras of ``pyproject.toml``). A module that fails to import only because one of
#: them is missing is skipped by :func:`import_package_modules`; any other error is raised.
OPTIONAL_DEPENDENCIES: frozenset[str] = frozenset({"triton", "gymnasium"})

# api -> {public name -> symbol}, in registration order, so the first name a symbol
# received is its canonical name and later ones are aliases.
_REGISTRY: dict[str, dict[str, object]] = {}

_REGENERATE = "python -m dlnotes.foundations.api_export --write {path}"


def api_export(*names: str, api: str = DEFAULT_API) -> Callable[[Symbol], Symbol]:
    """Make a decorator that exports a symbol under one or more public names.

    The names are checked when ``api_export`` is called; the returned decorator registers
    the symbol under every name in ``api`` and returns it unchanged (no wrapper). The
    first name is the canonical one, the others are aliases. Decorating the same symbol
    with the same names again does nothing; new names are added to the old ones. A
    top-level definition executed again (``importlib.reload``, a re-run notebook cell:
    same ``__module__`` and ``__qualname__``) takes its names over from the old object.
    Registration is all or nothing: if one name is refused, none is recorded.

    Args:
        *names: Public names as dotted Python identifiers relative to the API root, e.g.
            ``"algorithms.sliding_window_max"``. No part may be a keyword or start with
            ``_``, and a name may not be both a symbol and a namespace of another name.
        api: Which registry to use, a Python identifier (``"dlnotes"`` by default).

    Returns:
        A decorator ``symbol -> symbol`` that registers ``symbol``. Symbols that accept
        attributes (functions, classes, modules) also get the attribute
        ``__<api>_api_names__``: the tuple of all their names in ``api``.

    Raises:
        TypeError: If a name or ``api`` is not a string (e.g. ``@export`` written without
            parentheses).
        ValueError: If no name is given, a name is repeated, malformed, or would turn an
            exported symbol into a namespace (or the reverse); the decorator raises
            ``ValueError`` when a name already belongs to a different symbol.

    Examples:
        >>> @api_export("demo.square", "demo.sq", api="doctest")
        ... def square(x):
        ...     return x * x
        >>> exported_symbols("doctest")["demo.sq"] is square
        True
    """
    _check_api(api)
    checked = _check_names(names)

    def decorator(symbol: Symbol) -> Symbol:
        _register(symbol, checked, api)
        return symbol

    return decorator


export = functools.partial(api_export, api=DEFAULT_API)
"""``api_export`` with ``api="dlnotes"`` fixed, as ``tf_export`` fixes ``api_name``.

Use it as ``@export("part.name", "alias")`` above a public function or class of dlnotes.
``export(..., api="other")`` still works, because a keyword given to a
:func:`functools.partial` at call time overrides the frozen one.
"""


def api_names(symbol: object, api: str = DEFAULT_API) -> tuple[str, ...]:
    """The public names of ``symbol`` in ``api``, canonical name first.

    The answer comes from the registry, by identity, so a subclass of an exported class
    has no names of its own even though it *inherits* the ``__<api>_api_names__``
    attribute.

    Args:
        symbol: Any object.
        api: The registry to look in.

    Returns:
        The names in the order they were given; empty if ``symbol`` is not exported.

    Raises:
        TypeError: If ``api`` is not a string.
        ValueError: If ``api`` is not a Python identifier.

    Examples:
        >>> from dlnotes.algorithms.sliding_window import sliding_window_max
        >>> api_names(sliding_window_max)
        ('algorithms.sliding_window_max',)
    """
    _check_api(api)
    return tuple(name for name, held in _REGISTRY.get(api, {}).items() if held is symbol)


def exported_symbols(api: str = DEFAULT_API) -> dict[str, object]:
    """Every public name in ``api`` and the object it stands for, sorted by name.

    Only modules that have been imported have registered their names: import them first
    (see :func:`import_package_modules`).

    Args:
        api: The registry to read.

    Returns:
        A new dict ``{public name: symbol}``; aliases appear as separate keys holding the
        same object. Empty for an API nobody exported into.

    Raises:
        TypeError: If ``api`` is not a string.
        ValueError: If ``api`` is not a Python identifier.

    Examples:
        >>> import dlnotes.algorithms.sliding_window
        >>> "algorithms.sliding_window_max" in exported_symbols()
        True
    """
    _check_api(api)
    return dict(sorted(_REGISTRY.get(api, {}).items()))


def api_tree(api: str = DEFAULT_API) -> dict[str, object]:
    """The registry of ``api`` as nested dicts, one level per dot in the names.

    ``"algorithms.sliding_window_max"`` becomes ``tree["algorithms"]["sliding_window_max"]``.
    Inner nodes are plain dicts, leaves are the exported objects; keys are sorted.

    Args:
        api: The registry to read.

    Returns:
        The nested dict (empty for an API nobody exported into).

    Raises:
        TypeError: If ``api`` is not a string.
        ValueError: If ``api`` is not a Python identifier.

    Examples:
        >>> import dlnotes.algorithms.sliding_window
        >>> "sliding_window_max" in api_tree()["algorithms"]
        True
    """
    tree: dict[str, object] = {}
    for name, symbol in exported_symbols(api).items():
        *parents, leaf = name.split(".")
        node = tree
        for part in parents:
            # Registration refuses a name that is both a leaf and a namespace, so every
            # inner node met here is a dict created by this loop.
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[leaf] = symbol
    return tree


def build_api_module(module_name: str = "dlnotes.api", api: str = DEFAULT_API) -> types.ModuleType:
    """Build the public namespace of ``api`` as real module objects, like TF's ``tf.*``.

    Each namespace becomes a :class:`types.ModuleType` named ``<module_name>.<path>``
    with an ``__all__``; each exported object is set as an attribute of its namespace,
    so ``build_api_module().algorithms.sliding_window_max`` is the function itself. The
    modules are returned, not inserted into :data:`sys.modules`: nothing global changes.

    Args:
        module_name: Dotted name of the root module.
        api: The registry to read.

    Returns:
        The root module.

    Raises:
        TypeError: If ``module_name`` or ``api`` is not a string.
        ValueError: If ``module_name`` is not a dotted identifier or ``api`` not an
            identifier.

    Examples:
        >>> import dlnotes.algorithms.sliding_window
        >>> api = build_api_module("dlnotes.api")
        >>> api.algorithms.sliding_window_max([1, 3, -1, -3, 5, 3, 6, 7], 3)
        [3, 3, 5, 5, 6, 7]
    """
    if not isinstance(module_name, str):
        raise TypeError(f"module_name must be a str, got {type(module_name).__name__}")
    _check_dotted(module_name, "module_name", allow_private=True)
    symbols = exported_symbols(api)
    root = types.ModuleType(module_name, f"Public API {api!r}, built from its export registry.")
    namespaces = [root]
    for name, symbol in symbols.items():
        *parents, leaf = name.split(".")
        module = root
        for depth, part in enumerate(parents, start=1):
            child = vars(module).get(part)
            if child is None:
                child = types.ModuleType(f"{module.__name__}.{part}", f"Public namespace {'.'.join(parents[:depth])!r} of {api!r}.")
                setattr(module, part, child)
                namespaces.append(child)
            module = child
        setattr(module, leaf, symbol)
    for module in namespaces:
        module.__all__ = sorted(key for key in vars(module) if not key.startswith("_"))
    return root


class ImportedModules(NamedTuple):
    """What :func:`import_package_modules` did: modules imported and modules skipped."""

    imported: list[str]
    """Dotted names of the modules now imported, in discovery order."""
    skipped: dict[str, str]
    """Module name -> the missing optional dependency that prevented its import."""


def import_package_modules(
    package: str = "dlnotes", optional: Iterable[str] = OPTIONAL_DEPENDENCIES
) -> ImportedModules:
    """Import a package and all its submodules, so that every ``@export`` has run.

    Modules are found with :func:`pkgutil.walk_packages`. A module whose import fails
    with :class:`ModuleNotFoundError` for a package in ``optional`` (not installed) is
    skipped and reported; every other error, including an ``ImportError`` of a missing
    name inside an installed package, propagates.

    Args:
        package: Dotted name of the package to walk.
        optional: Top-level names of optional dependencies that may be absent.

    Returns:
        :class:`ImportedModules` with the imported and the skipped modules.

    Raises:
        TypeError: If ``package`` is not a string.
        ValueError: If ``package`` names a plain module instead of a package.
        ImportError: From any import that fails for another reason than a missing
            optional dependency (and any other exception a module raises on import).

    Examples:
        >>> report = import_package_modules("dlnotes")
        >>> "dlnotes.algorithms.sliding_window" in report.imported
        True
    """
    if not isinstance(package, str):
        raise TypeError(f"package must be a str, got {type(package).__name__}")
    optional = frozenset(optional)
    root = importlib.import_module(package)
    if not hasattr(root, "__path__"):
        raise ValueError(f"package must name a package (with submodules), got the module {package!r}")
    imported, skipped = [package], {}

    def skip_or_raise(name: str, error: BaseException) -> None:
        missing = _missing_optional_dependency(error, optional)
        if missing is None:
            raise error
        skipped[name] = missing

    def on_walk_error(name: str) -> None:
        # walk_packages calls this inside its `except` block when importing a package
        # (to look for its children) fails; we have already tried that import ourselves.
        if name not in skipped:
            skip_or_raise(name, sys.exc_info()[1])

    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}.", onerror=on_walk_error):
        try:
            importlib.import_module(info.name)
        except ImportError as error:
            skip_or_raise(info.name, error)
        else:
            imported.append(info.name)
    return ImportedModules(imported, skipped)


def generate_api_index(
    api: str = DEFAULT_API, import_modules: Iterable[str] = (), title: str = "Public API"
) -> str:
    """Render the registry of ``api`` as a Markdown page: one table row per public name.

    Columns: the public name (aliases say whose alias they are), where the object is
    defined (``module.qualname``) and the first line of its docstring. The output depends
    only on the registry, so it can be committed and compared.

    Args:
        api: The registry to render.
        import_modules: Modules to import first, so that their ``@export`` lines run.
        title: The page's heading.

    Returns:
        The page, ending with a newline.

    Raises:
        TypeError: If ``api`` or ``title`` is not a string.
        ValueError: If ``api`` is not a Python identifier.
        ImportError: If one of ``import_modules`` cannot be imported.

    Examples:
        >>> page = generate_api_index(import_modules=["dlnotes.algorithms.sliding_window"])
        >>> "`algorithms.sliding_window_max`" in page
        True
    """
    if not isinstance(title, str):
        raise TypeError(f"title must be a str, got {type(title).__name__}")
    _check_api(api)
    for module_name in import_modules:
        importlib.import_module(module_name)
    symbols = exported_symbols(api)
    distinct = {id(symbol) for symbol in symbols.values()}
    lines = [
        f"# {title}",
        "",
        f"<!-- Generated from the {api!r} export registry by dlnotes.foundations.api_export; do not edit. -->",
        "",
        f"Every public name registered in the `{api}` API with `api_export` (`@export`), sorted by",
        "name. Names are relative to the API root, the way TensorFlow's `app.run` means `tf.app.run`.",
        "The first name given to an object is its canonical name; the others are aliases.",
        f"{len(symbols)} names for {len(distinct)} objects. Regenerate this page with",
        f"`{_REGENERATE.format(path='<this file>')}`.",
        "",
        "| public name | defined in | summary |",
        "|---|---|---|",
    ]
    for name, symbol in symbols.items():
        canonical = api_names(symbol, api)[0]
        shown = f"`{name}`" if name == canonical else f"`{name}` (alias of `{canonical}`)"
        lines.append(f"| {shown} | `{_definition(symbol)}` | {_markdown_cell(_summary(symbol))} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: print, write or check the public-API index page of dlnotes.

    ``python -m dlnotes.foundations.api_export`` prints the page;
    ``--write PATH`` writes it and ``--check PATH`` exits with 1 when ``PATH`` differs.
    All submodules of ``--package`` are imported first; if one had to be skipped because
    an optional dependency is missing, ``--write`` and ``--check`` refuse (exit 2) rather
    than produce or accept an incomplete page.

    Args:
        argv: Arguments without the program name (``sys.argv[1:]`` when ``None``).

    Returns:
        The exit status: 0 on success, 1 for a stale page, 2 for an incomplete registry.
    """
    parser = argparse.ArgumentParser(
        prog="python -m dlnotes.foundations.api_export",
        description="Generate the Markdown index of every name exported with @export.",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", type=Path, metavar="PATH", help="write the page to PATH")
    action.add_argument("--check", type=Path, metavar="PATH", help="exit 1 if PATH is not up to date")
    parser.add_argument("--package", default="dlnotes", help="package whose modules to import (default: dlnotes)")
    parser.add_argument("--api", default=DEFAULT_API, help=f"registry to render (default: {DEFAULT_API})")
    args = parser.parse_args(argv)

    report = import_package_modules(args.package)
    page = generate_api_index(api=args.api)
    if report.skipped:
        missing = ", ".join(f"{module} (needs {dependency})" for module, dependency in report.skipped.items())
        print(f"skipped modules whose optional dependency is missing: {missing}", file=sys.stderr)
        if args.write or args.check:
            print("refusing to write or check an incomplete page; install the extras first", file=sys.stderr)
            return 2
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(page, encoding="utf-8")
        print(f"wrote {args.write} ({len(exported_symbols(args.api))} public names)")
    elif args.check:
        current = args.check.read_text(encoding="utf-8") if args.check.is_file() else None
        if current != page:
            print(f"{args.check} is out of date; regenerate it with `{_REGENERATE.format(path=args.check)}`")
            return 1
        print(f"{args.check} is up to date")
    else:
        sys.stdout.write(page)
    return 0


def _check_api(api: object) -> None:
    if not isinstance(api, str):
        raise TypeError(f"api must be a str, got {type(api).__name__}")
    if not api.isidentifier() or keyword.iskeyword(api) or api.startswith("_"):
        raise ValueError(f"api must be a Python identifier not starting with '_', like 'dlnotes', got {api!r}")


def _check_names(names: tuple[object, ...]) -> tuple[str, ...]:
    if not names:
        raise ValueError("api_export needs at least one public name, e.g. @export('algorithms.sliding_window_max')")
    for name in names:
        if not isinstance(name, str):
            if callable(name):  # `@export` without parentheses passes the function itself
                shown = f"{getattr(name, '__qualname__', '?')!r} (write @export('part.name'), not a bare @export)"
            else:
                shown = repr(name)
            raise TypeError(f"public names must be str, got {type(name).__name__} {shown}")
        _check_dotted(name, "public name", allow_private=False)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"each public name may be given once per call, got {repeated[0]!r} twice")
    return tuple(names)  # type: ignore[arg-type]


def _check_dotted(name: str, what: str, allow_private: bool) -> None:
    if not name:
        raise ValueError(f"{what} must be a non-empty dotted identifier like 'algorithms.sliding_window_max', got ''")
    for part in name.split("."):
        if not part.isidentifier():
            problem = "an empty part" if not part else f"the part {part!r}, which is not a Python identifier"
        elif keyword.iskeyword(part):
            problem = f"the part {part!r}, which is a Python keyword"
        elif part.startswith("_") and not allow_private:
            problem = f"the part {part!r}, which starts with '_' (private)"
        else:
            continue
        raise ValueError(f"{what} must be a dotted identifier like 'algorithms.sliding_window_max'; {name!r} has {problem}")


def _register(symbol: object, names: tuple[str, ...], api: str) -> None:
    table = _REGISTRY.setdefault(api, {})
    new = [name for name in names if name not in table]
    for name in names:
        holder = table.get(name, symbol)
        if holder is not symbol and not _is_redefinition(holder, symbol):
            raise ValueError(
                f"public name {name!r} in api {api!r} already belongs to {_definition(holder)}; "
                f"it cannot also name {_definition(symbol)}"
            )
    claimed = [*table, *new]
    for name in new:
        for other in claimed:
            if other.startswith(f"{name}."):
                raise ValueError(f"public name {name!r} in api {api!r} is already a namespace (of {other!r}); it cannot also name an object")
            if name.startswith(f"{other}."):
                raise ValueError(f"public name {name!r} in api {api!r} would put a namespace under {other!r}, which names an object")
    for name in names:
        table[name] = symbol  # a replaced name keeps its place, so canonical order survives
    try:  # the TensorFlow habit: the object itself carries its names
        setattr(symbol, f"__{api}_api_names__", api_names(symbol, api))
    except (AttributeError, TypeError):
        pass  # tuples, ints, builtins refuse attributes: the registry alone remembers them


def _is_redefinition(old: object, new: object) -> bool:
    # importlib.reload, or re-running a notebook cell, executes a top-level definition
    # again and makes a new object with the same module and qualified name: that object
    # takes the name over. Nested definitions (`<locals>`, `<lambda>`) and objects without
    # a module never match, so two genuinely different symbols always conflict.
    where_old = (getattr(old, "__module__", None), getattr(old, "__qualname__", None))
    where_new = (getattr(new, "__module__", None), getattr(new, "__qualname__", None))
    module, qualname = where_new
    return (
        where_old == where_new
        and isinstance(module, str)
        and isinstance(qualname, str)
        and "<" not in qualname
        and type(old) is type(new)
    )


def _definition(symbol: object) -> str:
    if isinstance(symbol, types.ModuleType):
        return symbol.__name__
    qualname = getattr(symbol, "__qualname__", None)
    if isinstance(qualname, str):
        module = getattr(symbol, "__module__", None)
        return f"{module}.{qualname}" if module else qualname
    kind = type(symbol)
    return f"{kind.__module__}.{kind.__qualname__} object"


def _summary(symbol: object) -> str:
    if inspect.isroutine(symbol) or inspect.isclass(symbol) or inspect.ismodule(symbol):
        doc = inspect.getdoc(symbol)
    else:  # an instance shows its own docstring only, never its class's
        doc = vars(symbol).get("__doc__") if hasattr(symbol, "__dict__") else None
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _missing_optional_dependency(error: BaseException, optional: frozenset[str]) -> str | None:
    # ModuleNotFoundError (not its parent ImportError) means "no such module installed";
    # `from installed_pkg import missing_name` raises a plain ImportError and is a bug.
    if isinstance(error, ModuleNotFoundError) and error.name:
        top = error.name.split(".")[0]
        if top in optional:
            return top
    return None


if __name__ == "__main__":
    # Run the copy registered as dlnotes.foundations.api_export, not this __main__ copy:
    # decorated modules import the former, so only its registry holds their names.
    from dlnotes.foundations.api_export import main as _main

    sys.exit(_main())
