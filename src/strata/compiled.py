"""Ring 0, compiled: the same source, built into C extensions by mypyc, loaded only while current.

Ring 0 is written as plain, strictly typed Python, and that source is the spec. ``make setup``
also compiles its hot modules with mypyc (part of the pinned mypy) into the virtual environment,
``<venv>/strata-compiled/``, next to a manifest of the SHA-256 of every source it compiled. When
``strata`` is imported, :func:`install` puts the compiled modules on the import path, but only if
every one of those sources is unchanged; otherwise the whole of ring 0 runs interpreted, and one
line on stderr says why. A compiled module is never mixed with an edited one: compiled modules
call each other directly, so one stale module would run old rules.

``STRATA_PURE=1`` runs ring 0 interpreted (to profile it with py-spy, or to check that both give
the same bytes, as ``tests/differential/test_compiled.py`` does).

Build: ``strata compile`` (``make setup`` runs it). Status: ``strata compile --status``.

The same build makes :data:`NATIVE`, the hashing extension of ``core/hashing.py`` (SHA-256 through
OpenSSL's one-context API, hand-written C), and loads it on the same terms. It needs OpenSSL's
headers (Debian: ``libssl-dev``); without them the build says so and ring 0 hashes with
``hashlib`` (the same digests, slower).

Which modules: the rules of ring 0, not its records. mypyc builds a class it cannot make native
(a ``msgspec.Struct``) as a plain Python class but drops the keywords of its ``class`` line
(python/mypy#21938), so a ``Struct``'s ``frozen=True``, ``array_like=True`` or ``tag=`` would be
lost. The records therefore live in modules that stay interpreted (a module's ``records.py``,
re-exported by the module; ``stf/transactions.py``, ``stf/block.py``, ``stf/events.py``), and
:func:`build` refuses to compile a module that defines one.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import sys
import sysconfig
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

SOURCE_ROOT = Path(__file__).resolve().parent.parent
"""The directory holding the ``strata`` package's source."""

MODULES: tuple[str, ...] = (
    "strata/core/codec.py",
    "strata/core/errors.py",
    "strata/core/units.py",
    "strata/core/merkle.py",
    "strata/core/ordered_merkle.py",
    "strata/state/store.py",
    "strata/state/registry.py",
    "strata/state/packed.py",
    "strata/state/smt.py",
    "strata/modules/accounts/__init__.py",
    "strata/modules/accounts/state.py",
    "strata/modules/markets/__init__.py",
    "strata/modules/oracle/__init__.py",
    "strata/modules/collateral/__init__.py",
    "strata/modules/book/book.py",
    "strata/modules/book/state.py",
    "strata/modules/book/types.py",
    "strata/modules/margin/__init__.py",
    "strata/modules/clearing/__init__.py",
    "strata/modules/clearing/matching.py",
    "strata/modules/funding/__init__.py",
    "strata/modules/triggers/__init__.py",
    "strata/modules/liquidation/__init__.py",
    "strata/stf/settlement.py",
    "strata/stf/commitment.py",
    "strata/stf/state_root.py",
    "strata/stf/state_io.py",
    "strata/stf/timed.py",
    "strata/stf/risk.py",
    "strata/stf/transition.py",
)
"""The compiled modules, as paths under :data:`SOURCE_ROOT`."""

NATIVE: dict[str, str] = {"strata/core/_sha256.c": "strata.core._sha256"}
"""The hand-written C extensions built with them: source path -> module name."""

EXTRA_CFLAGS: tuple[str, ...] = ("-fno-semantic-interposition", "-fno-plt")
"""Flags added to mypyc's: calls between the functions of the one shared library may be direct
(and inlined) rather than through its symbol table, and calls into libpython skip the PLT
(-1.7% instructions per event on ``strata bench engine --instructions``)."""

TRAINING = SOURCE_ROOT.parent / "bench" / "engine_bench.py"
"""The profile-guided build's training run: the engine benchmark's two chain workloads, run once
(in a checkout; an installed package without ``bench/`` builds without a profile)."""

TRAINING_EVENTS = 20_000
"""Order operations of each training workload (two blocks each)."""

COMPILED_DIR_ENV = "STRATA_COMPILED_DIR"
"""Load ring 0 from this build directory rather than the environment's (the training run of an
instrumented build)."""

GROUP = "strata_ring0"
"""mypyc's name for the shared library all compiled modules live in (``strata_ring0__mypyc``)."""

MANIFEST_VERSION = 1
PURE_ENV = "STRATA_PURE"
_STRUCT_CLASS = re.compile(r"^class \w+\((msgspec\.)?Struct\b", re.MULTILINE)


def compiled_dir(prefix: str | None = None) -> Path:
    """Where the build goes: inside the virtual environment (or prefix) that runs Strata."""
    return Path(prefix if prefix is not None else sys.prefix) / "strata-compiled"


def module_name(path: str) -> str:
    """``strata/stf/transition.py`` -> ``strata.stf.transition``; a package's ``__init__`` -> it."""
    parts = path.removesuffix(".py").split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- loading -----------------------------------------------------------------------------------


class _CompiledFinder:
    """A meta path finder (``sys.meta_path``): serves the compiled extension for each module of
    the manifest, and nothing else."""

    def __init__(self, files: dict[str, tuple[Path, Path | None]]) -> None:
        self._files = files

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None = None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        entry = self._files.get(fullname)
        if entry is None:
            # A source submodule of a compiled package: a compiled package's ``__path__`` is set
            # only after its body ran, and its body imports its submodules.
            parent = self._files.get(fullname.rpartition(".")[0])
            if parent is not None and parent[1] is not None:
                return importlib.machinery.PathFinder.find_spec(fullname, [str(parent[1])])
            return None
        extension, package_dir = entry
        loader = importlib.machinery.ExtensionFileLoader(fullname, str(extension))
        return importlib.util.spec_from_file_location(
            fullname,
            str(extension),
            loader=loader,
            submodule_search_locations=None if package_dir is None else [str(package_dir)],
        )


_STATUS: dict[str, object] = {
    "compiled": False,
    "reason": "not installed yet",
    "modules": 0,
    "native": [],
}


def status() -> dict[str, object]:
    """``{"compiled": bool, "reason": str, "modules": int, "native": [str]}``: how ring 0 runs in
    this process (``native``: the C extensions of :data:`NATIVE` loaded)."""
    return dict(_STATUS)


def _stale_reason(manifest: dict[str, Any], source_root: Path) -> str | None:
    if manifest.get("version") != MANIFEST_VERSION:
        return "its manifest has another version"
    if manifest.get("ext_suffix") != sysconfig.get_config_var("EXT_SUFFIX"):
        return "it was built for another interpreter"
    modules = manifest.get("modules")
    if not isinstance(modules, dict) or not modules:
        return "its manifest lists no modules"
    for path, entry in (modules | manifest.get("native", {})).items():
        source = source_root / path
        if not source.is_file():
            return f"src/{path} is gone"
        if source_digest(source) != entry["source_sha256"]:
            return f"src/{path} changed since it was built"
    return None


def plan(
    root: Path, source_root: Path = SOURCE_ROOT, pure: bool = False
) -> tuple[dict[str, tuple[Path, Path | None]] | None, str]:
    """The extensions to load from the build in ``root`` (module name -> extension file and, for a
    package, its source directory), or ``None``; and the reason, in words."""
    if pure:
        return None, f"{PURE_ENV} is set"
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        return None, f"no build in {root}"
    try:
        manifest = json.loads(manifest_path.read_text())
        stale = _stale_reason(manifest, source_root)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        stale = f"its manifest is unreadable ({error!r})"
    if stale is not None:
        return None, f"the compiled ring 0 is stale: {stale}"
    files: dict[str, tuple[Path, Path | None]] = {}
    for path, entry in manifest["modules"].items():
        package_dir = (source_root / path).parent if path.endswith("/__init__.py") else None
        files[module_name(path)] = (root / entry["extension"], package_dir)
    files[f"{GROUP}__mypyc"] = (root / manifest["support"], None)
    for path, entry in manifest.get("native", {}).items():
        files[NATIVE[path]] = (root / entry["extension"], None)
    return files, f"mypyc build in {root}"


def install() -> dict[str, object]:
    """Put the compiled ring 0 on the import path, if it is built and current (:func:`plan`);
    say on stderr when a build exists but is stale. Idempotent."""
    global _STATUS
    if any(isinstance(f, _CompiledFinder) for f in sys.meta_path):
        return status()
    root = os.environ.get(COMPILED_DIR_ENV)
    files, reason = plan(
        Path(root) if root else compiled_dir(), pure=os.environ.get(PURE_ENV, "") not in ("", "0")
    )
    if files is None:
        _STATUS = {"compiled": False, "reason": reason, "modules": 0, "native": []}
        if "stale" in reason:
            print(
                f"strata: running ring 0 interpreted, {reason} (`make setup` rebuilds it)",
                file=sys.stderr,
            )
        return status()
    sys.meta_path.insert(0, _CompiledFinder(files))
    native = [name for name in NATIVE.values() if name in files]
    _STATUS = {
        "compiled": True,
        "reason": reason,
        "modules": len(files) - 1 - len(native),
        "native": native,
    }
    return status()


# --- building ----------------------------------------------------------------------------------


def build(
    destination: Path, modules: Sequence[str] = MODULES, jobs: int = 2, pgo: bool = True
) -> dict[str, object]:
    """Compile ``modules`` with mypyc into ``destination`` (replaced whole); return the manifest.

    With ``pgo`` (and GCC, and :data:`TRAINING` at hand) the C is compiled twice: instrumented,
    then trained on the engine benchmark's workloads in a subprocess, then again with that
    profile (``-fprofile-use``: GCC lays out and inlines the paths the workloads take). The
    rules are the same code either way; only the machine code's layout differs."""
    import shutil
    import tempfile
    import time

    from mypyc.build import mypycify

    for path in modules:
        if _STRUCT_CLASS.search((SOURCE_ROOT / path).read_text()):
            raise SystemExit(
                f"error: src/{path} defines a msgspec Struct; mypyc would drop its class "
                "keywords (python/mypy#21938). Move the Struct to a module that is not compiled."
            )
    digests = {path: source_digest(SOURCE_ROOT / path) for path in modules}
    destination = destination.resolve()
    destination.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="strata-mypyc-"))
    staging = destination.with_name(destination.name + ".new")
    shutil.rmtree(staging, ignore_errors=True)
    start = time.monotonic()
    print(f"compiling {len(modules)} ring-0 modules with mypyc into {destination} ...", flush=True)
    cwd = os.getcwd()
    cache = os.environ.get("MYPY_CACHE_DIR")
    os.environ["MYPY_CACHE_DIR"] = str(work / "mypy-cache")  # not src/.mypy_cache
    profiled = False
    try:
        os.chdir(SOURCE_ROOT)
        print("  type-checking and generating C (mypyc) ...", flush=True)
        extensions = mypycify(
            list(modules), opt_level="3", group_name=GROUP, target_dir=str(work / "c")
        )
        flagged = [(e, list(e.extra_compile_args)) for e in extensions]  # with mypyc's flags
        why_not = _why_no_pgo() if pgo else "not asked for"
        if why_not is None:
            # Both passes compile the same C from the same paths: GCC finds each object's
            # profile by its object file's path.
            profile = work / "profile"
            print(f"  compiling C, instrumented ({len(extensions)} extensions) ...", flush=True)
            instrumented = work / "instrumented"
            generate = [f"-fprofile-generate={profile}"]
            native = _compile_all(flagged, instrumented, work, jobs, generate, generate)
            _write_manifest(instrumented, modules, digests, native)
            print(f"  training: {TRAINING.name} on {TRAINING_EVENTS} operations ...", flush=True)
            why_not = _train(instrumented, profile)
        if why_not is None:
            use = [f"-fprofile-use={profile}", "-fprofile-correction", "-Wno-missing-profile"]
            print(f"  compiling C with the profile ({len(extensions)} extensions) ...", flush=True)
            native = _compile_all(flagged, staging, work, jobs, use, [])
            profiled = True
        else:
            print(f"  compiling C ({len(extensions)} extensions; no profile: {why_not}) ...")
            native = _compile_all(flagged, staging, work, jobs, [], [])
    finally:
        os.chdir(cwd)
        if cache is None:
            os.environ.pop("MYPY_CACHE_DIR", None)
        else:
            os.environ["MYPY_CACHE_DIR"] = cache
        shutil.rmtree(work, ignore_errors=True)
    manifest = _write_manifest(staging, modules, digests, native, profiled)
    shutil.rmtree(destination, ignore_errors=True)
    staging.rename(destination)
    print(f"compiled in {time.monotonic() - start:.0f} s", flush=True)
    return manifest


def _why_no_pgo() -> str | None:
    """Why the build cannot be profile-guided here, or ``None`` if it can."""
    import shlex
    import subprocess

    if not TRAINING.is_file():
        return f"no {TRAINING.relative_to(SOURCE_ROOT.parent)} (not a checkout)"
    compiler = shlex.split(os.environ.get("CC") or str(sysconfig.get_config_var("CC") or "cc"))
    try:
        version = subprocess.run(
            [*compiler, "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "the C compiler does not say its version"
    if "clang" in version.lower() or "gcc" not in version.lower():
        return "the C compiler is not GCC (its profiles need other tools)"
    return None


def _train(staging: Path, profile: Path) -> str | None:
    """Run :data:`TRAINING` once with the instrumented build in ``staging`` (its counters go to
    ``profile``); ``None`` if it ran, else why not."""
    import subprocess

    env = dict(os.environ, **{COMPILED_DIR_ENV: str(staging)})
    env.pop(PURE_ENV, None)  # `make` runs `strata compile` interpreted; the training is compiled
    argv = ["--engine-only", "--events", str(TRAINING_EVENTS), "--runs", "1"]
    done = subprocess.run(
        [sys.executable, str(TRAINING), *argv],
        env=env,
        cwd=SOURCE_ROOT.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        return f"the training run failed ({done.returncode}): {done.stderr[-500:]}"
    if not any(profile.rglob("*.gcda")):
        return "the training run left no profile"
    return None


def _compile_all(
    extensions: list[tuple[Any, list[str]]],
    staging: Path,
    work: Path,
    jobs: int,
    cflags: list[str],
    ldflags: list[str],
) -> dict[str, dict[str, str]]:
    """Compile mypyc's ``extensions`` (each with mypyc's flags) and the :data:`NATIVE` ones into
    ``staging`` with :data:`EXTRA_CFLAGS` and ``cflags`` (``ldflags`` to link); return the
    native entries."""
    for extension, mypyc_flags in extensions:
        extension.extra_compile_args = [*mypyc_flags, *EXTRA_CFLAGS, *cflags]
        extension.extra_link_args = [*ldflags]
    _build_ext("strata-compiled", [e for e, _ in extensions], staging, work / "o", jobs)
    return _build_native(staging, work, jobs, [*EXTRA_CFLAGS, *cflags], ldflags)


def _write_manifest(
    staging: Path,
    modules: Sequence[str],
    digests: dict[str, str],
    native: dict[str, dict[str, str]],
    profiled: bool = False,
) -> dict[str, object]:
    suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
    entries: dict[str, dict[str, str]] = {}
    for path in modules:
        extension = path.removesuffix(".py") + suffix  # beside where the source would be
        if not (staging / extension).is_file():
            raise SystemExit(f"error: mypyc did not produce {extension}")
        entries[path] = {"source_sha256": digests[path], "extension": extension}
    manifest: dict[str, object] = {
        "version": MANIFEST_VERSION,
        "ext_suffix": suffix,
        "support": f"{GROUP}__mypyc{suffix}",
        "modules": entries,
        "native": native,
        "profile_guided": profiled,
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def _build_ext(name: str, extensions: list[Any], staging: Path, temp: Path, jobs: int) -> None:
    """setuptools' ``build_ext`` of ``extensions`` into ``staging``."""
    from setuptools import setup  # type: ignore[import-untyped]

    # --force: the profile-guided build compiles the same sources to the same objects twice (its
    # profile is found by the objects' paths).
    args = [
        "--quiet",
        "build_ext",
        "--force",
        "--build-lib",
        str(staging),
        "--build-temp",
        str(temp),
    ]
    setup(name=name, ext_modules=extensions, script_args=[*args, "--parallel", str(jobs)])


def _build_native(
    staging: Path, work: Path, jobs: int, cflags: list[str], ldflags: list[str]
) -> dict[str, dict[str, str]]:
    """Build the :data:`NATIVE` extensions into ``staging``; return their manifest entries. One
    that fails to build (no OpenSSL headers) is left out, with a line saying so: ring 0 then
    runs without it."""
    from setuptools import Extension

    suffix = str(sysconfig.get_config_var("EXT_SUFFIX"))
    entries: dict[str, dict[str, str]] = {}
    for path, name in NATIVE.items():
        print(f"  compiling {name} (C) ...", flush=True)
        extension = Extension(
            name,
            sources=[path],
            libraries=["crypto"],
            extra_compile_args=cflags,
            extra_link_args=ldflags,
        )
        try:
            _build_ext("strata-native", [extension], staging, work / "native", jobs)
        except (SystemExit, Exception) as error:  # a compiler's failure is SystemExit here
            print(
                f"  warning: {name} not built ({error}); ring 0 hashes with hashlib "
                "(the same digests, slower). Debian: apt install libssl-dev",
                flush=True,
            )
            continue
        built = name.replace(".", "/") + suffix
        if not (staging / built).is_file():
            raise SystemExit(f"error: the C compiler did not produce {built}")
        entries[path] = {"source_sha256": source_digest(SOURCE_ROOT / path), "extension": built}
    return entries


def compile_main(argv: list[str]) -> int:
    """``strata compile``: build ring 0 into this virtual environment; ``--status``: say how this
    interpreter runs it."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="strata compile", description="compile ring 0 with mypyc (strata/compiled.py)"
    )
    parser.add_argument("--status", action="store_true", help="print how ring 0 runs, as JSON")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="C compilers")
    parser.add_argument(
        "--no-pgo",
        action="store_true",
        help="compile once, without the training run (faster to build, slower to run)",
    )
    args = parser.parse_args(argv)
    if args.status:
        print(json.dumps(status()))
        return 0
    build(compiled_dir(), jobs=args.jobs, pgo=not args.no_pgo)
    return 0
