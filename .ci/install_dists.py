"""Install this repository's distributions (not editable, as users get them) into the
current environment, with every extra of each plugin and the test tools.

    python .ci/install_dists.py --all             core + every plugins/*/ + native/
    python .ci/install_dists.py --plugin NAME     core + plugins/NAME
    python .ci/install_dists.py --example         core + examples/third-party-backend
    python .ci/install_dists.py                   core only

Used by tox.ini; one pip call, so pip resolves everything together -- after one for what
``FIRST`` names, when an extra being installed needs it.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_TOOLS = ["pytest>=8", "hypothesis>=6", "trio>=0.25", "packaging>=23"]
# Installed on their own before the distributions when an extra of that name is installed:
# with torch==2.13.0 (the CPU build) already there, sentence-transformers' own torch range is
# satisfied, so pip does not fetch a newer multi-GB CUDA build.
FIRST = {"minilm": ["torch==2.13.0"]}


def with_extras(folder: Path) -> str:
    """``folder[extra1,extra2]`` naming every extra the distribution declares."""
    project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    extras = sorted(project.get("optional-dependencies", {}))
    return f"{folder}[{','.join(extras)}]" if extras else str(folder)


def first_requirements(folders: list[Path]) -> list[str]:
    """What ``FIRST`` says to install before the extras these distributions declare."""
    needed: list[str] = []
    for folder in folders:
        project = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
        for extra in sorted(project.get("optional-dependencies", {})):
            needed += [req for req in FIRST.get(extra, []) if req not in needed]
    return needed


def pip(*arguments: str) -> int:
    """Run ``pip install -q`` quietly in this interpreter; return its exit status."""
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-warn-script-location",
               *arguments]
    print("install_dists: pip", " ".join(command[3:]), flush=True)
    done = subprocess.run(command, stderr=subprocess.PIPE, text=True, check=False)
    noise = "is ignored: it is neither a file nor a directory"  # unused local index mirrors
    sys.stderr.write("".join(line for line in done.stderr.splitlines(keepends=True)
                             if noise not in line))
    return done.returncode


def ensure_browser() -> int:
    """Debian's chromium and chromedriver for the console's browser tests (playwright drives
    them through ``executable_path``, so ``playwright install`` is never needed)."""
    if shutil.which("chromium") and shutil.which("chromedriver"):
        return 0
    print("install_dists: apt-get install chromium chromium-driver", flush=True)
    if subprocess.call(["apt-get", "update", "-qq"]) != 0:
        return 1
    return subprocess.call(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
                           stdout=subprocess.DEVNULL)


def warm_wasm_python() -> int:
    """Compile the WebAssembly Python runtime (both flavours) once per machine, before any
    test: the first compile takes a minute or more, and a test must never pay it (instant
    when the machine's cache already holds it)."""
    print("install_dists: neuroflow sandbox warm --fuel", flush=True)
    return subprocess.call([sys.executable, "-m", "neuroflow", "sandbox", "warm", "--fuel"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every distribution")
    parser.add_argument("--plugin", action="append", default=[], help="plugins/NAME")
    parser.add_argument("--example", action="store_true", help="the example backend")
    args = parser.parse_args()

    folders = [ROOT / "neuroflow_core"]
    if args.all:
        folders += sorted(p.parent for p in ROOT.glob("plugins/*/pyproject.toml"))
    for name in args.plugin:
        folder = ROOT / "plugins" / name
        if not (folder / "pyproject.toml").is_file():
            print(f"install_dists: plugins/{name}/pyproject.toml does not exist", file=sys.stderr)
            return 2
        folders.append(folder)
    if args.all or args.plugin:
        native = ROOT / "native"
        if (native / "pyproject.toml").is_file():
            folders.append(native)
    if args.example:
        folders.append(ROOT / "examples" / "third-party-backend")
    # The core's own extras name sibling plugins by version; they come from their folders.
    targets = [str(folders[0]), *map(with_extras, folders[1:])]
    if any(folder.name == "console" for folder in folders) and (status := ensure_browser()):
        return status
    first = first_requirements(folders[1:])
    if first and (status := pip(*first)):
        return status
    if status := pip(*targets, *TEST_TOOLS):
        return status
    if any(folder.name == "sandbox-wasm" for folder in folders):
        return warm_wasm_python()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
