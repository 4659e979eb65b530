"""The hand-kept type stubs of deepgm._core list every function with the module's own signatures."""

import ast
import inspect
from pathlib import Path

import deepgm._core as core

STUBS = Path(__file__).resolve().parents[1] / "python" / "deepgm" / "_core.pyi"


def stub_functions():
    tree = ast.parse(STUBS.read_text())
    out = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            args = node.args
            out[node.name] = ([a.arg for a in args.posonlyargs + args.args], [a.arg for a in args.kwonlyargs])
    return out


def module_functions():
    out = {}
    for name in dir(core):
        fn = getattr(core, name)
        if callable(fn) and not name.startswith("__") and not isinstance(fn, type):
            sig = inspect.signature(fn)
            positional = [p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            keyword = [p.name for p in sig.parameters.values() if p.kind == p.KEYWORD_ONLY]
            out[name] = (positional, keyword)
    return out


def test_stubs_match_the_native_module():
    stubs, module = stub_functions(), module_functions()
    assert set(stubs) == set(module)
    for name in module:
        assert stubs[name] == module[name], name


def test_package_is_typed():
    assert (STUBS.parent / "py.typed").is_file()
