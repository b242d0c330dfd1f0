"""The stubs (cookiestore/_cookiestore.pyi) say exactly what the extension module has: every
name the .pyi declares exists in the module and every public name of the module is declared,
class members included, exception bases as declared, each with a docstring; the
RevocationKind literal is the library's list of kinds."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import cookiestore
from cookiestore import _cookiestore

STUB = Path(cookiestore.__file__).with_name("_cookiestore.pyi")


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text())


def _is_type_alias(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.AnnAssign)
        and isinstance(node.annotation, ast.Name)
        and node.annotation.id == "TypeAlias"
    )


def _declared(tree: ast.Module) -> dict[str, ast.stmt]:
    """The module-level names the stub declares for the runtime (not the TypeAliases)."""
    names: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and not _is_type_alias(node):
            assert isinstance(node.target, ast.Name)
            names[node.target.id] = node
        elif isinstance(node, ast.Assign):
            raise AssertionError(
                f"line {node.lineno}: a plain assignment in the stub; annotate a type alias "
                "`: TypeAlias`, a module constant with its type"
            )
    return names


def _aliases(tree: ast.Module) -> dict[str, ast.AnnAssign]:
    return {n.target.id: n for n in tree.body if _is_type_alias(n)}  # type: ignore[union-attr]


def test_every_stub_name_is_in_the_module_and_back():
    declared = _declared(_stub())
    public = {n for n in vars(_cookiestore) if not n.startswith("_")}
    missing = sorted(n for n in declared if not hasattr(_cookiestore, n))
    assert missing == [], f"declared in the .pyi but not in the module: {missing}"
    undeclared = sorted(public - set(declared))
    assert undeclared == [], f"in the module but not in the .pyi: {undeclared}"
    aliases = _aliases(_stub())
    shadowing = sorted(n for n in aliases if hasattr(_cookiestore, n))
    assert shadowing == [], f"TypeAliases that are module names too: {shadowing}"


def test_package_exports_every_public_name():
    public = {n for n in vars(_cookiestore) if not n.startswith("_")}
    assert set(cookiestore.__all__) == public
    for name in public:
        assert getattr(cookiestore, name) is getattr(_cookiestore, name)


def _members(cls: ast.ClassDef) -> set[str]:
    return {
        n.name
        for n in cls.body
        if isinstance(n, ast.FunctionDef) and (not n.name.startswith("_") or n.name == "__new__")
    }


def test_class_members_match():
    for name, node in _declared(_stub()).items():
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_cookiestore, name)
        if issubclass(cls, BaseException):
            continue
        runtime = {m for m in vars(cls) if not m.startswith("_")}
        stub = _members(node) - {"__new__"}
        assert stub == runtime, f"{name}: stub {sorted(stub - runtime)} / module {sorted(runtime - stub)}"
        # A constructor (`__new__`, as pyo3 makes it) only where the module's class has one.
        assert ("__new__" in _members(node)) == ("__new__" in vars(cls)), name
        # Classes that cannot be subclassed at runtime are @final in the stub.
        final = any(isinstance(d, ast.Name) and d.id == "final" for d in node.decorator_list)
        assert final, f"{name} is not @final in the .pyi (pyo3 classes cannot be subclassed)"
        with pytest.raises(TypeError):
            type("Sub", (cls,), {})


def test_exceptions_as_declared_with_docstrings():
    classes = 0
    for name, node in _declared(_stub()).items():
        if not isinstance(node, ast.ClassDef):
            continue
        cls = getattr(_cookiestore, name)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            continue
        classes += 1
        assert ast.get_docstring(node), f"{name} has no docstring in the .pyi"
        assert cls.__doc__, f"{name} has no docstring in the module"
        (base,) = node.bases
        assert isinstance(base, ast.Name)
        expected = getattr(_cookiestore, base.id) if hasattr(_cookiestore, base.id) else getattr(builtins, base.id)
        assert cls.__bases__ == (expected,), name
        if name != "CookieStoreError":
            assert issubclass(cls, cookiestore.CookieStoreError)
    assert classes >= 30  # one per library error, and the binding's own


def test_revocation_kind_literal_is_the_librarys_list():
    alias = _aliases(_stub())["RevocationKind"]
    literal = alias.value
    assert isinstance(literal, ast.Subscript) and isinstance(literal.value, ast.Name)
    assert literal.value.id == "Literal"
    elts = literal.slice.elts if isinstance(literal.slice, ast.Tuple) else [literal.slice]
    kinds = tuple(e.value for e in elts)  # type: ignore[attr-defined]
    assert kinds == cookiestore.REVOCATION_KINDS
    assert len(kinds) == 7
    assert cookiestore.REVOKING_KINDS == frozenset({"logout", "authid", "maintenance"})
    assert cookiestore.REVOKING_KINDS <= frozenset(kinds)
