"""The compiled ring 0 (``strata/compiled.py``): loaded only while every compiled source is the one
it was built from, and loaded whole.

The bytes the compiled and the interpreted ring 0 give are compared by
``tests/integration/test_determinism.py`` (one of its interpreters runs with ``STRATA_PURE=1``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

import strata.stf.transition
from strata import compiled


def _manifest_copy(tmp_path: Path) -> tuple[Path, Path]:
    """A build root holding this machine's manifest, and a copy of the sources it names."""
    manifest = json.loads((compiled.compiled_dir() / "manifest.json").read_text())
    root = tmp_path / "build"
    root.mkdir()
    (root / "manifest.json").write_text(json.dumps(manifest))
    sources = tmp_path / "src"
    for path in manifest["modules"] | manifest.get("native", {}):
        (sources / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(compiled.SOURCE_ROOT / path, sources / path)
    return root, sources


needs_build = pytest.mark.skipif(
    not (compiled.compiled_dir() / "manifest.json").is_file(),
    reason="ring 0 is not compiled here (`make setup COMPILE=0`)",
)


@needs_build
def test_this_process_runs_the_build_it_has() -> None:
    """`make setup` built ring 0 and nothing changed since: every listed module is the extension,
    a source module of a compiled package (``records.py``) still loads from source."""
    assert compiled.status()["compiled"] is True, compiled.status()
    assert compiled.status()["modules"] == len(compiled.MODULES)
    assert strata.stf.transition.__file__.endswith(".so")
    from strata.modules.margin import records

    assert records.__file__.endswith("records.py")
    assert records.Position.__struct_config__.frozen  # its class keywords are intact


@needs_build
def test_a_changed_source_turns_the_whole_build_off(tmp_path: Path) -> None:
    root, sources = _manifest_copy(tmp_path)
    files, reason = compiled.plan(root, sources)
    assert files is not None and reason.startswith("mypyc build")
    native = set(json.loads((root / "manifest.json").read_text()).get("native", {}))
    assert set(files) == {compiled.module_name(p) for p in compiled.MODULES} | {
        f"{compiled.GROUP}__mypyc"
    } | {compiled.NATIVE[p] for p in native}
    for path in ["strata/modules/book/book.py", *native]:  # a rule, or the C of the hashes
        edited = sources / path
        kept = edited.read_text()
        edited.write_text(kept + "\n// an edit\n")
        files, reason = compiled.plan(root, sources)
        assert files is None
        assert reason == f"the compiled ring 0 is stale: src/{path} changed since it was built"
        edited.write_text(kept)


@needs_build
def test_a_missing_source_or_a_broken_manifest_turns_it_off(tmp_path: Path) -> None:
    root, sources = _manifest_copy(tmp_path)
    (sources / "strata/stf/risk.py").unlink()
    assert compiled.plan(root, sources) == (
        None,
        "the compiled ring 0 is stale: src/strata/stf/risk.py is gone",
    )
    suffix = compiled.sysconfig.get_config_var("EXT_SUFFIX")
    (root / "manifest.json").write_text(
        json.dumps({"version": 1, "ext_suffix": suffix, "modules": 3})
    )
    assert compiled.plan(root, sources) == (
        None,
        "the compiled ring 0 is stale: its manifest lists no modules",
    )
    (root / "manifest.json").write_text("{not json")
    files, reason = compiled.plan(root, sources)
    assert files is None and "unreadable" in reason


def test_no_build_or_pure_runs_interpreted(tmp_path: Path) -> None:
    assert compiled.plan(tmp_path) == (None, f"no build in {tmp_path}")
    assert compiled.plan(tmp_path, pure=True) == (None, "STRATA_PURE is set")


def test_a_module_defining_a_struct_is_refused(tmp_path: Path) -> None:
    """mypyc would drop the Struct's class keywords (python/mypy#21938)."""
    with pytest.raises(SystemExit, match=r"stf/block\.py defines a msgspec Struct"):
        compiled.build(tmp_path / "out", ["strata/stf/block.py"])
    assert not (tmp_path / "out").exists()


def test_the_compiled_modules_define_no_struct() -> None:
    """What :func:`compiled.build` checks, checked on the list itself."""
    for path in compiled.MODULES:
        text = (compiled.SOURCE_ROOT / path).read_text()
        assert not compiled._STRUCT_CLASS.search(text), path
    assert sys.modules["strata.compiled"] is compiled


def test_profile_guided_build_needs_gcc(monkeypatch: pytest.MonkeyPatch) -> None:
    # Another compiler (or none that answers) gives a plain build, with the reason printed.
    monkeypatch.setenv("CC", "no-such-compiler-strata")
    assert compiled._why_no_pgo() == "the C compiler does not say its version"
    fake = shutil.which("true")
    assert fake is not None
    monkeypatch.setenv("CC", fake)  # answers nothing: not GCC
    assert compiled._why_no_pgo() == "the C compiler is not GCC (its profiles need other tools)"


def test_the_training_run_loads_the_build_it_is_given(tmp_path: Path) -> None:
    # STRATA_COMPILED_DIR points a process at another build (the training run's, instrumented):
    # one with no build there runs interpreted and says where it looked.
    import os
    import subprocess

    code = "import json, strata; from strata import compiled; print(json.dumps(compiled.status()))"
    env = dict(os.environ, **{compiled.COMPILED_DIR_ENV: str(tmp_path)})
    env.pop(compiled.PURE_ENV, None)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    status = json.loads(done.stdout)
    assert status["compiled"] is False and status["reason"] == f"no build in {tmp_path}"
