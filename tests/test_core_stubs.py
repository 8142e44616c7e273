"""The compiled module and its stubs (python/cuagent/_core.pyi) name the same things, with
the same parameters: mypy checks the package against the stubs, so a binding added, renamed
or given another argument without its stub would otherwise go unchecked."""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import cuagent
from cuagent import _core

STUBS = Path(cuagent.__file__).resolve().parent / "_core.pyi"


def _public(names):
    return {n for n in names if not n.startswith("_")}


def _stub_tree() -> ast.Module:
    return ast.parse(STUBS.read_text(), filename=str(STUBS))


def _stub_members(body) -> dict[str, ast.AST]:
    out: dict[str, ast.AST] = {}
    for node in body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = node
    return out


def _stub_params(node: ast.AST) -> list[list[str]]:
    """Parameter names of each signature of a stub function (overloads give several)."""
    fn = node
    assert isinstance(fn, ast.FunctionDef)
    a = fn.args
    names = [p.arg for p in a.posonlyargs + a.args + a.kwonlyargs]
    return [[n for n in names if n != "self"]]


_SIG = re.compile(r"^(?:\d+\. )?\w+\((?P<params>.*)\) -> ", re.MULTILINE)


def _native_params(obj) -> list[list[str]]:
    """Parameter names of each signature pybind11 wrote into the docstring."""
    out = []
    for m in _SIG.finditer(obj.__doc__ or ""):
        params, depth, cur = [], 0, ""
        for ch in m.group("params"):
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
            if ch == "," and depth == 0:
                params.append(cur)
                cur = ""
            else:
                cur += ch
        if cur.strip():
            params.append(cur)
        names = [p.split(":")[0].strip() for p in params]
        out.append([n for n in names if n not in ("self", "*")])
    return out


def _native_class_members(cls) -> set[str]:
    return _public(cls.__dict__)


def test_every_export_has_a_stub_and_every_stub_an_export():
    stub = _public(_stub_members(_stub_tree().body))
    native = _public(dir(_core))
    assert native - stub == set(), "exported by _core but missing from _core.pyi"
    assert stub - native == set(), "in _core.pyi but not exported by _core"


def test_stubs_have_no_catch_all():
    members = _stub_members(_stub_tree().body)
    assert "__getattr__" not in members
    assert re.search(r"\bAny\b", STUBS.read_text()) is None


CLASSES = sorted(n for n in _public(dir(_core)) if inspect.isclass(getattr(_core, n)))


@pytest.mark.parametrize("name", CLASSES)
def test_class_members_match(name):
    cls = getattr(_core, name)
    stub_cls = _stub_members(_stub_tree().body).get(name)
    assert isinstance(stub_cls, ast.ClassDef)
    stub = _public(_stub_members(stub_cls.body))
    native = _native_class_members(cls)
    assert native - stub == set(), f"{name}: members missing from _core.pyi"
    assert stub - native == set(), f"{name}: stub members _core does not have"


def _callables():
    tree = _stub_members(_stub_tree().body)
    for name in sorted(_public(dir(_core)) & set(tree)):  # a missing stub fails the test above
        obj = getattr(_core, name)
        if inspect.isclass(obj):
            stub_cls = tree[name]
            assert isinstance(stub_cls, ast.ClassDef)
            members = _stub_members(stub_cls.body)
            for attr in sorted(_native_class_members(obj) | {"__init__"}):
                fn = obj.__dict__.get(attr)
                node = members.get(attr)
                if callable(fn) and isinstance(node, ast.FunctionDef) and not _is_overloaded(stub_cls, attr):
                    yield f"{name}.{attr}", fn, node
        elif callable(obj):
            yield name, obj, tree[name]


def _is_overloaded(cls: ast.ClassDef, attr: str) -> bool:
    return sum(isinstance(n, ast.FunctionDef) and n.name == attr for n in cls.body) > 1


@pytest.mark.parametrize("qualname,fn,node", list(_callables()), ids=lambda v: v if isinstance(v, str) else "")
def test_parameters_match(qualname, fn, node):
    native = _native_params(fn)
    assert native, f"{qualname}: no signature in its docstring"
    assert _stub_params(node) == native[:1] or _stub_params(node)[0] in native, qualname


def test_overloaded_init_matches_every_native_signature():
    stub_cls = _stub_members(_stub_tree().body)["CounterSpec"]
    assert isinstance(stub_cls, ast.ClassDef)
    stub = sorted(_stub_params(n)[0] for n in stub_cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    assert stub == sorted(_native_params(_core.CounterSpec.__init__))
