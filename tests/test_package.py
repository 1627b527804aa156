"""Packaging rules: the engine stays headless and napari finds the plugin's manifest."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GUI_MODULES = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "napari", "magicgui", "pyqtgraph", "superqt", "vispy")


def test_engine_imports_no_gui_packages():
    code = (
        "import sys, poco_core, poco_core.cli.main\n"
        "import poco_core.data.io, poco_core.data.preprocess, poco_core.models, poco_core.training.train, poco_core.analysis.embedding\n"
        "poco_core.cli.main.build_parser()\n"
        f"bad = [m for m in {GUI_MODULES!r} if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"poco_core pulled in GUI packages: {out.stdout}"


def test_public_api_names_resolve():
    import poco_core

    for name in poco_core.__all__:
        assert getattr(poco_core, name) is not None
    with pytest.raises(AttributeError):
        poco_core.no_such_name  # noqa: B018


def test_manifest_at_root_is_the_one_installed():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="napari.manifest") if ep.name == "poco-napari"]
    assert eps, "poco-napari is not registered under napari.manifest"
    import poco_napari

    installed = Path(poco_napari.__file__).parent / "napari.yaml"
    assert installed.read_text() == (ROOT / "napari.yaml").read_text()


def test_npe2_validates_manifest():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("poco-napari")
    assert manifest.name == "poco-napari"
    out = subprocess.run([sys.executable, "-m", "npe2", "validate", "poco-napari"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_napari_plugin_manager_lists_contributions():
    npe2 = pytest.importorskip("npe2")
    pm = npe2.PluginManager.instance()
    pm.discover()
    widgets = {w.display_name for w in pm.iter_widgets() if w.plugin_name == "poco-napari"}
    assert {"Traces", "Preprocessing", "Training", "Finetuning", "Embeddings", "Live"} <= widgets
    samples = {s.key for plugin, contribs in pm.iter_sample_data() if plugin == "poco-napari" for s in contribs}
    assert {"recording", "cohort"} <= samples
    readers = [r for r in pm.iter_compatible_readers(["x.nwb"]) if r.plugin_name == "poco-napari"]
    assert readers, "no poco-napari reader offered for .nwb"


@pytest.mark.slow
def test_wheel_ships_the_root_manifest(tmp_path):
    """A normal (non-editable) install gets the same napari.yaml and every subpackage."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    (wheel,) = tmp_path.glob("poco_napari-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        assert zf.read("poco_napari/napari.yaml").decode() == (ROOT / "napari.yaml").read_text()
    assert {"poco_core/data/io/__init__.py", "poco_core/models/poco.py", "poco_core/cli/train.py"} <= names


def test_api_functions_are_not_shadowed_by_their_modules():
    """`poco_core.train` etc. stay callable even after the (old) modules of the same names are imported."""
    code = (
        "import warnings; warnings.simplefilter('ignore')\n"
        "import poco_core, poco_core.training.train, poco_core.analysis.evaluate, poco_core.training.finetune\n"
        "import poco_core.train, poco_core.evaluate, poco_core.finetune, poco_core.forecast\n"
        "print(all(callable(f) and not hasattr(f, '__path__') for f in "
        "(poco_core.train, poco_core.evaluate, poco_core.finetune, poco_core.forecast)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "True"
