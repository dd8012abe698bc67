"""The export registry: names, aliases, errors, the namespace it builds and the index page.

Every test registers into its own fresh API (the ``api`` fixture), because the registry
lives as long as the process and other tests share the worker. Expected values are
written out by hand from the names each test declares, never read back from the module.
"""

from __future__ import annotations

import functools
import importlib
import re
import subprocess
import sys
import textwrap
import tomllib
import types
import uuid
from pathlib import Path

import pytest

from dlnotes.foundations.api_export import (
    DEFAULT_API,
    OPTIONAL_DEPENDENCIES,
    api_export,
    api_names,
    api_tree,
    build_api_module,
    export,
    exported_symbols,
    generate_api_index,
    import_package_modules,
    main,
)

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "reference" / "public-api.md"
REGENERATE = "python -m dlnotes.foundations.api_export --write docs/reference/public-api.md"


@pytest.fixture
def api() -> str:
    """A registry name no other test uses."""
    return f"t{uuid.uuid4().hex}"


def make_function(name: str, doc: str = ""):
    """A fresh function object with the given name and docstring (defined in this module)."""

    def function():
        return name

    function.__name__ = function.__qualname__ = name
    function.__doc__ = doc
    return function


def test_export_is_api_export_with_the_api_fixed():
    assert isinstance(export, functools.partial)
    assert export.func is api_export
    assert export.args == ()
    assert export.keywords == {"api": "dlnotes"} and DEFAULT_API == "dlnotes"


def test_decorator_returns_the_same_object_and_records_names(api):
    def area(width, height):
        """Area of a rectangle."""
        return width * height

    decorated = api_export("geometry.area", api=api)(area)
    assert decorated is area, "the decorator must not wrap"
    assert decorated(3, 4) == 12
    assert area.__dict__[f"__{api}_api_names__"] == ("geometry.area",)
    assert api_names(area, api) == ("geometry.area",)
    assert exported_symbols(api) == {"geometry.area": area}


def test_registry_lists_every_name_sorted(api):
    zeta, alpha, beta = make_function("zeta"), make_function("alpha"), make_function("beta")
    api_export("z.zeta", api=api)(zeta)
    api_export("a.alpha", api=api)(alpha)
    api_export("a.beta", api=api)(beta)
    symbols = exported_symbols(api)
    assert list(symbols) == ["a.alpha", "a.beta", "z.zeta"]
    assert symbols["a.alpha"] is alpha and symbols["a.beta"] is beta and symbols["z.zeta"] is zeta
    symbols.clear()  # a copy: the registry is untouched
    assert len(exported_symbols(api)) == 3


def test_partial_keyword_can_be_overridden(api):
    function = make_function("f")
    export("tools.f", api=api)(function)
    assert exported_symbols(api) == {"tools.f": function}
    assert "tools.f" not in exported_symbols("dlnotes")


def test_one_symbol_under_two_names(api):
    add = make_function("add")
    api_export("math.add", "add", api=api)(add)
    assert exported_symbols(api) == {"add": add, "math.add": add}
    assert api_names(add, api) == ("math.add", "add"), "canonical name first, in declaration order"
    namespace = build_api_module("tf", api=api)
    assert namespace.add is add and namespace.math.add is add


def test_redecorating_is_idempotent_and_can_add_aliases(api):
    relu = make_function("relu")
    api_export("nn.relu", api=api)(relu)
    api_export("nn.relu", api=api)(relu)  # the same claim again: nothing happens
    assert exported_symbols(api) == {"nn.relu": relu}
    api_export("nn.relu", "activations.relu", api=api)(relu)
    assert api_names(relu, api) == ("nn.relu", "activations.relu")
    assert getattr(relu, f"__{api}_api_names__") == ("nn.relu", "activations.relu")


def test_a_name_claimed_twice_names_both_symbols_and_changes_nothing(api):
    first, second = make_function("first"), make_function("second")
    api_export("ops.run", api=api)(first)
    with pytest.raises(ValueError) as info:
        api_export("ops.other", "ops.run", api=api)(second)
    message = str(info.value)
    assert "'ops.run'" in message
    assert f"{__name__}.first" in message and f"{__name__}.second" in message, message
    assert exported_symbols(api) == {"ops.run": first}, "a refused decoration registers nothing"
    assert api_names(second, api) == ()
    assert not hasattr(second, f"__{api}_api_names__")


def test_reloading_a_module_hands_its_names_to_the_new_objects(api, tmp_path, monkeypatch):
    package = f"pkg{uuid.uuid4().hex}"
    write_package(tmp_path, package, {
        "__init__.py": "",
        "layers.py": f"""
            from dlnotes.foundations.api_export import api_export

            @api_export("layers.dense", "dense", api={api!r})
            def dense(x):
                return x + 1
            """,
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(f"{package}.layers")
    old = module.dense
    importlib.reload(module)  # executes `def dense` again: a new function object
    assert module.dense is not old
    assert exported_symbols(api) == {"dense": module.dense, "layers.dense": module.dense}
    assert api_names(module.dense, api) == ("layers.dense", "dense")


def test_nested_definitions_with_one_qualname_still_conflict(api):
    closures = [lambda: 0, lambda: 1]  # same __module__ and __qualname__ ('...<lambda>')
    assert closures[0].__qualname__ == closures[1].__qualname__
    api_export("f", api=api)(closures[0])
    with pytest.raises(ValueError, match="already belongs to"):
        api_export("f", api=api)(closures[1])


def test_same_qualname_in_another_module_conflicts(api):
    mine = make_function("twin")
    theirs = make_function("twin")
    theirs.__module__ = "somewhere.else"
    api_export("twin", api=api)(mine)
    with pytest.raises(ValueError, match="somewhere.else.twin"):
        api_export("twin", api=api)(theirs)


def test_apis_are_separate_registries(api):
    one, two = make_function("one"), make_function("two")
    api_export("shared.name", api=api)(one)
    api_export("shared.name", api=f"{api}_other")(two)
    assert exported_symbols(api) == {"shared.name": one}
    assert exported_symbols(f"{api}_other") == {"shared.name": two}


@pytest.mark.parametrize(
    ("first", "second"),
    [("layers", "layers.dense"), ("layers.dense", "layers"), ("a.b", "a.b.c.d")],
)
def test_a_name_cannot_be_both_an_object_and_a_namespace(api, first, second):
    api_export(first, api=api)(make_function("one"))
    with pytest.raises(ValueError, match="namespace"):
        api_export(second, api=api)(make_function("two"))
    assert list(exported_symbols(api)) == [first]


def test_object_and_namespace_conflict_inside_one_call(api):
    with pytest.raises(ValueError, match="namespace"):
        api_export("layers", "layers.dense", api=api)(make_function("one"))
    assert exported_symbols(api) == {}


@pytest.mark.parametrize(
    ("names", "match"),
    [
        ((), "at least one public name"),
        (("",), "non-empty"),
        (("a..b",), "an empty part"),
        (("a.",), "an empty part"),
        ((".a",), "an empty part"),
        (("1st.layer",), "not a Python identifier"),
        (("conv-2d",), "not a Python identifier"),
        (("nn.conv 2d",), "not a Python identifier"),
        (("lambda.f",), "Python keyword"),
        (("nn.class",), "Python keyword"),
        (("_private",), "starts with '_'"),
        (("nn._helper",), "starts with '_'"),
        (("nn.relu", "nn.relu"), "'nn.relu' twice"),
    ],
)
def test_invalid_names_raise_value_error(api, names, match):
    with pytest.raises(ValueError, match=match):
        api_export(*names, api=api)
    assert exported_symbols(api) == {}


@pytest.mark.parametrize(("names", "match"), [((3,), "got int 3"), (("ok", None), "got NoneType None"), ((b"nn.relu",), "got bytes")])
def test_non_string_names_raise_type_error(names, match):
    with pytest.raises(TypeError, match=match):
        api_export(*names)


def test_bare_decorator_gets_a_hint():
    with pytest.raises(TypeError, match=r"not a bare @export"):

        @export
        def forgot_the_name():
            pass


@pytest.mark.parametrize(("bad_api", "error"), [(3, TypeError), (None, TypeError), ("", ValueError), ("a.b", ValueError), ("_hidden", ValueError), ("class", ValueError)])
def test_invalid_api_names(bad_api, error):
    for call in (lambda: api_export("x", api=bad_api), lambda: exported_symbols(bad_api), lambda: api_tree(bad_api),
                 lambda: api_names(len, bad_api), lambda: build_api_module("x", api=bad_api),
                 lambda: generate_api_index(api=bad_api)):
        with pytest.raises(error, match="api must be"):
            call()


def test_api_tree_nests_by_dots(api):
    dense, conv, relu, version = (make_function(name) for name in ("dense", "conv", "relu", "version"))
    api_export("layers.dense", api=api)(dense)
    api_export("layers.conv.conv2d", "layers.conv.default", api=api)(conv)
    api_export("nn.relu", api=api)(relu)
    api_export("version", api=api)(version)
    expected = {
        "layers": {"conv": {"conv2d": conv, "default": conv}, "dense": dense},
        "nn": {"relu": relu},
        "version": version,
    }
    assert api_tree(api) == expected
    assert api_tree(f"{api}_never_used") == {}


def test_build_api_module_makes_real_modules(api):
    dense, conv = make_function("dense"), make_function("conv")
    api_export("layers.dense", api=api)(dense)
    api_export("layers.conv.conv2d", api=api)(conv)
    root = build_api_module("mylib.api", api=api)
    assert isinstance(root, types.ModuleType) and root.__name__ == "mylib.api"
    assert isinstance(root.layers, types.ModuleType) and root.layers.__name__ == "mylib.api.layers"
    assert root.layers.conv.__name__ == "mylib.api.layers.conv"
    assert root.layers.dense is dense and root.layers.conv.conv2d is conv
    assert root.__all__ == ["layers"] and root.layers.__all__ == ["conv", "dense"]
    assert root.layers.conv.__all__ == ["conv2d"]
    assert "mylib.api" not in sys.modules, "building a namespace must not touch sys.modules"
    with pytest.raises(ValueError, match="module_name"):
        build_api_module("my lib", api=api)
    with pytest.raises(TypeError, match="module_name"):
        build_api_module(3, api=api)


def test_objects_that_refuse_attributes_are_still_registered(api):
    methods = ("brute", "deque")
    assert api_export("consts.methods", api=api)(methods) is methods
    assert exported_symbols(api) == {"consts.methods": methods}
    assert api_names(methods, api) == ("consts.methods",)
    assert api_export("builtins.length", api=api)(len) is len
    assert build_api_module("x", api=api).builtins.length is len


def test_subclass_does_not_inherit_the_export(api):
    @api_export("models.Base", api=api)
    class Base:
        pass

    class Child(Base):
        pass

    attribute = f"__{api}_api_names__"
    assert getattr(Child, attribute) == ("models.Base",), "the attribute is inherited..."
    assert attribute not in vars(Child)
    assert api_names(Child, api) == (), "...but the registry knows Child was never exported"


def test_index_page_matches_a_hand_written_page(api):
    def sine(x):
        """Sine of x | in radians.

        More text that must not appear.
        """

    cosine = make_function("cosine", "Cosine of x.")
    api_export("math.sin", "sin", api=api)(sine)
    api_export("math.cos", api=api)(cosine)
    api_export("consts.pair", api=api)((1, 2))
    page = generate_api_index(api=api, title="Toy API")
    qualname = f"{__name__}.test_index_page_matches_a_hand_written_page.<locals>.sine"
    expected = textwrap.dedent(f"""\
        # Toy API

        <!-- Generated from the '{api}' export registry by dlnotes.foundations.api_export; do not edit. -->

        Every public name registered in the `{api}` API with `api_export` (`@export`), sorted by
        name. Names are relative to the API root, the way TensorFlow's `app.run` means `tf.app.run`.
        The first name given to an object is its canonical name; the others are aliases.
        4 names for 3 objects. Regenerate this page with
        `python -m dlnotes.foundations.api_export --write <this file>`.

        | public name | defined in | summary |
        |---|---|---|
        | `consts.pair` | `builtins.tuple object` |  |
        | `math.cos` | `{__name__}.cosine` | Cosine of x. |
        | `math.sin` | `{qualname}` | Sine of x \\| in radians. |
        | `sin` (alias of `math.sin`) | `{qualname}` | Sine of x \\| in radians. |
        """)
    assert page == expected


def test_generate_api_index_imports_modules_first(api):
    page = generate_api_index(import_modules=["dlnotes.algorithms.sliding_window"])
    assert "| `algorithms.sliding_window_max` | `dlnotes.algorithms.sliding_window.sliding_window_max` |" in page
    with pytest.raises(ModuleNotFoundError):
        generate_api_index(api=api, import_modules=["dlnotes.no_such_module"])
    with pytest.raises(TypeError, match="title"):
        generate_api_index(api=api, title=None)


def test_sliding_window_functions_are_exported_for_real():
    from dlnotes.algorithms import sliding_window

    symbols = exported_symbols()
    assert symbols["algorithms.sliding_window_max"] is sliding_window.sliding_window_max
    assert symbols["algorithms.sliding_window_max_torch"] is sliding_window.sliding_window_max_torch
    assert sliding_window.sliding_window_max.__name__ == "sliding_window_max"
    assert not hasattr(sliding_window.sliding_window_max, "__wrapped__"), "exported, not wrapped"
    api = build_api_module("dlnotes.api")
    assert api.algorithms.sliding_window_max([1, 3, -1, -3, 5, 3, 6, 7], 3) == [3, 3, 5, 5, 6, 7]


def write_package(root: Path, name: str, files: dict[str, str]) -> None:
    for relative, text in files.items():
        path = root / name / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_import_package_modules_skips_only_missing_optional_dependencies(tmp_path, monkeypatch):
    package = f"pkg{uuid.uuid4().hex}"
    optional = f"optional{uuid.uuid4().hex}"
    write_package(tmp_path, package, {
        "__init__.py": "",
        "plain.py": "VALUE = 1\n",
        "needs_optional.py": f"import {optional}\n",
        "sub/__init__.py": f"from {optional}.inner import thing\n",
        "sub/child.py": "VALUE = 2\n",
        "fine/__init__.py": "",
        "fine/leaf.py": "VALUE = 3\n",
    })
    monkeypatch.syspath_prepend(str(tmp_path))
    report = import_package_modules(package, optional=[optional])
    assert sorted(report.imported) == sorted([package, f"{package}.plain", f"{package}.fine", f"{package}.fine.leaf"])
    assert report.skipped == {f"{package}.needs_optional": optional, f"{package}.sub": optional}
    assert f"{package}.sub.child" not in sys.modules, "children of a skipped package are not imported"


@pytest.mark.parametrize(
    "bad_module",
    [
        "import {optional}_not_optional\n",  # a missing package that is not declared optional
        "from json import no_such_name\n",  # an ImportError inside an installed package
        "raise RuntimeError('a real bug')\n",
    ],
)
def test_import_package_modules_raises_real_errors(tmp_path, monkeypatch, bad_module):
    package = f"pkg{uuid.uuid4().hex}"
    optional = f"optional{uuid.uuid4().hex}"
    write_package(tmp_path, package, {"__init__.py": "", "broken.py": bad_module.format(optional=optional)})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises((ImportError, RuntimeError)):
        import_package_modules(package, optional=[optional])


def test_import_package_modules_raises_for_a_broken_subpackage(tmp_path, monkeypatch):
    package = f"pkg{uuid.uuid4().hex}"
    write_package(tmp_path, package, {"__init__.py": "", "sub/__init__.py": "from json import nope\n", "sub/leaf.py": ""})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="nope"):
        import_package_modules(package, optional=[])


def test_import_package_modules_argument_checks():
    with pytest.raises(TypeError, match="package must be a str"):
        import_package_modules(None)
    with pytest.raises(ValueError, match="must name a package"):
        import_package_modules("dlnotes.foundations.api_export")


def test_optional_dependencies_match_pyproject_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements):
        return {re.split(r"[\s;\[<>=!~]", requirement, maxsplit=1)[0].lower() for requirement in requirements}

    extras = project["optional-dependencies"]
    assert names(extras["kernels"]) | names(extras["rl"]) == set(OPTIONAL_DEPENDENCIES)
    assert not names(project["dependencies"]) & set(OPTIONAL_DEPENDENCIES)


def test_public_api_page_is_up_to_date():
    report = import_package_modules("dlnotes")
    if report.skipped:
        pytest.skip(f"optional dependencies missing, the registry is incomplete: {report.skipped}")
    page = generate_api_index()
    committed = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
    assert committed == page, (
        f"{PAGE.relative_to(ROOT)} does not match the @export registry; "
        f"regenerate it from the repository root with `{REGENERATE}` and commit it"
    )


def test_cli_write_and_check(tmp_path, capsys):
    target = tmp_path / "nested" / "public-api.md"
    assert main(["--write", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == generate_api_index()
    assert main(["--check", str(target)]) == 0
    target.write_text("stale\n", encoding="utf-8")
    assert main(["--check", str(target)]) == 1
    assert main(["--check", str(tmp_path / "missing.md")]) == 1
    output = capsys.readouterr().out
    assert "is out of date; regenerate it with `python -m dlnotes.foundations.api_export --write" in output
    assert main([]) == 0
    assert capsys.readouterr().out == generate_api_index()


def test_cli_refuses_an_incomplete_registry(tmp_path, monkeypatch, capsys):
    package = f"pkg{uuid.uuid4().hex}"
    write_package(tmp_path, package, {"__init__.py": "", "needs.py": "import triton_that_is_not_installed\n"})
    monkeypatch.syspath_prepend(str(tmp_path))
    # main() relies on the default `optional` of import_package_modules: declare the
    # missing package optional there, the way an uninstalled extra looks.
    monkeypatch.setattr(import_package_modules, "__defaults__", ("dlnotes", frozenset({"triton_that_is_not_installed"})))
    assert main(["--package", package, "--write", str(tmp_path / "page.md")]) == 2
    assert not (tmp_path / "page.md").exists()
    assert "needs triton_that_is_not_installed" in capsys.readouterr().err


def test_python_dash_m_uses_the_imported_registry_and_import_is_side_effect_free():
    # `python -m` runs the file as __main__; the page must still list the exports that
    # decorated modules registered in dlnotes.foundations.api_export.
    result = subprocess.run([sys.executable, "-m", "dlnotes.foundations.api_export"], capture_output=True, text=True, cwd=ROOT, check=True)
    assert "| `algorithms.sliding_window_max` |" in result.stdout, result.stdout + result.stderr
    probe = "import sys, dlnotes.foundations.api_export as m; print(sorted(k for k in sys.modules if k.startswith('dlnotes')), m.exported_symbols())"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['dlnotes', 'dlnotes.foundations', 'dlnotes.foundations.api_export'] {}"
