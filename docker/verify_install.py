"""Prove that an image's installed packages are the checkout's, file for file.

    python verify_install.py manifest SRC > source-manifest.json   # build stage, from the checkout
    python -I verify_install.py check source-manifest.json         # final image; exit 1 on any difference

Why: a stale setuptools build/ folder once put empty placeholder packages into the image while
every build step succeeded, and every worker died at start (issue 14). The check runs in the image
that ships, so whatever installs the packages, a difference fails the build. Standard library only.
"""

from __future__ import annotations

import hashlib
import json
import sys
from importlib.machinery import PathFinder
from pathlib import Path

PACKAGES = ("model", "worker", "bot", "training")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _package_files(root: Path) -> list[Path]:
    """Every file of a package folder but bytecode (what the wheel carries)."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    )


def manifest(src: Path) -> dict[str, str]:
    """{path relative to the checkout: sha256} of every file of the project's packages."""
    files = {
        path.relative_to(src).as_posix(): _sha256(path)
        for package in PACKAGES
        for path in _package_files(src / package)
    }
    if not files:
        raise SystemExit(f"error: no package files under {src}")
    return files


def installed_root(package: str, search_path: list[str] | None = None) -> Path | None:
    """Where a package is installed (on sys.path by default), found without importing it."""
    spec = PathFinder.find_spec(package, search_path)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def check(expected: dict[str, str], search_path: list[str] | None = None) -> list[str]:
    """Every difference between the installed packages and the manifest, as readable lines."""
    problems = []
    for package in PACKAGES:
        root = installed_root(package, search_path)
        wanted = {rel: digest for rel, digest in expected.items() if rel.split("/")[0] == package}
        if root is None:
            problems.append(f"{package}: not installed")
            continue
        for rel, digest in wanted.items():
            path = root.parent / rel
            if not path.is_file():
                problems.append(f"{rel}: missing from {root}")
            elif _sha256(path) != digest:
                problems.append(f"{rel}: differs from the checkout ({path.stat().st_size} bytes installed)")
        for path in _package_files(root):
            rel = path.relative_to(root.parent).as_posix()
            if rel not in wanted:
                problems.append(f"{rel}: installed but not in the checkout")
    return problems


def summary(expected: dict[str, str]) -> str:
    counts = {p: sum(rel.split("/")[0] == p for rel in expected) for p in PACKAGES}
    sizes = {p: (installed_root(p) / "__init__.py").stat().st_size for p in PACKAGES}
    return f"installed packages match the checkout, {len(expected)} files: " + "; ".join(
        f"{p} {counts[p]} files, __init__.py {sizes[p]} B" for p in PACKAGES
    )


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "manifest":
        print(json.dumps(manifest(Path(argv[1])), indent=1, sort_keys=True))
        return 0
    if len(argv) == 2 and argv[0] == "check":
        expected = json.loads(Path(argv[1]).read_text())
        problems = check(expected)
        if problems:
            print("error: the installed packages are not the checkout's:", file=sys.stderr)
            for line in problems:
                print(f"  {line}", file=sys.stderr)
            return 1
        print(summary(expected))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
