"""The house's rules that imports can break: production code never imports the partners'
stand-ins, and domain/ imports nothing with I/O."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ["api", "activities", "workflows", "store", "domain", "gateways", "runtime"]
ROOT_MODULES = ["worker.py"]


def imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def files(*where: str) -> list[Path]:
    out: list[Path] = []
    for w in where:
        p = ROOT / w
        out += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    return out


def test_production_code_never_imports_the_sandboxes() -> None:
    found = {
        str(f.relative_to(ROOT)): sorted(n for n in imported(f) if n.split(".")[0] == "sandboxes")
        for f in files(*PRODUCTION, *ROOT_MODULES)
    }
    assert {f: names for f, names in found.items() if names} == {}
    assert len(found) > 50  # the scan saw the code


def test_the_domain_does_no_io() -> None:
    io = {"sqlalchemy", "httpx", "temporalio", "fastapi", "store", "api", "gateways", "workflows"}
    found = {
        str(f.relative_to(ROOT)): sorted(n for n in imported(f) if n.split(".")[0] in io)
        for f in files("domain")
    }
    assert {f: names for f, names in found.items() if names} == {}
