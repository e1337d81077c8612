"""The resources module finds icons, styles and the desktop template; extras name their pip extra."""

import sys
import xml.etree.ElementTree as ET

import pytest

from workbench import extras
from workbench import resources as R


def test_every_action_icon_and_the_app_icon_is_an_svg():
    for name in R.ACTION_ICONS + ("app",):
        p = R.icon_path(name)
        root = ET.parse(p).getroot()
        assert root.tag.endswith("svg") and root.get("viewBox"), p


def test_app_icon_pngs_have_their_sizes():
    for size, p in R.app_icon_pngs().items():
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", p
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
        assert (width, height) == (size, size), p


def test_unknown_names_get_one_clear_sentence():
    with pytest.raises(FileNotFoundError, match="'rocket'.*run, stop"):
        R.icon_path("rocket")
    with pytest.raises(ValueError, match="plain name"):
        R.icon_path("../presets/x")
    with pytest.raises(ValueError, match="sizes that ship"):
        R.app_icon_png(20)
    with pytest.raises(ValueError, match="light, dark"):
        R.style_sheet("solarized")


def test_style_sheets_are_nonempty_and_balanced():
    for name in R.STYLES:
        qss = R.style_sheet(name)
        assert "QToolBar" in qss and qss.count("{") == qss.count("}"), name
        assert "@ICONS@" not in qss


def test_desktop_entry_fills_every_field_and_quotes_odd_paths():
    text = R.desktop_entry("/opt/wb/workbench")
    assert "@" not in text
    fields = dict(line.split("=", 1) for line in text.splitlines()[1:] if "=" in line)
    assert fields["Exec"] == "/opt/wb/workbench gui %F" and fields["TryExec"] == "/opt/wb/workbench"
    assert fields["Icon"] == R.APP_ID and fields["StartupWMClass"] == R.APP_NAME
    odd = R.desktop_entry("/opt/my apps/$wb")
    assert 'Exec="/opt/my apps/\\\\$wb" gui %F' in odd
    with pytest.raises(ValueError):
        R.desktop_entry("  ")


def test_require_names_the_extra_when_the_package_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)   # makes `import umap` fail, installed or not
    with pytest.raises(extras.MissingExtra) as e:
        extras.require("umap", "umap", feature="UMAP")
    assert "pip install 'meta-learning-workbench[umap]'" in str(e.value)
    assert str(e.value).startswith("UMAP needs the optional extra 'umap'")
    assert isinstance(e.value, ImportError) and not extras.available("umap")
    with pytest.raises(ValueError, match="unknown optional extra"):
        extras.require("cuda", "cupy")


def test_require_returns_the_module_when_present():
    assert extras.require("umap", "json").dumps([1]) == "[1]"   # any importable module will do


def test_desktop_install_and_uninstall_into_a_prefix(tmp_path):
    from workbench import desktop
    written = desktop.install(tmp_path, exec_path=tmp_path / "bin" / "workbench")
    assert len(written) == 2 + len(R.APP_ICON_SIZES)
    assert (tmp_path / "applications" / f"{R.APP_ID}.desktop").read_text().count(str(tmp_path)) == 2
    assert sorted(desktop.uninstall(tmp_path)) == sorted(written)
    assert desktop.uninstall(tmp_path) == []


def test_desktop_entry_passes_desktop_file_validate(tmp_path):
    import shutil
    import subprocess
    tool = shutil.which("desktop-file-validate")
    if tool is None:
        pytest.skip("desktop-file-validate (desktop-file-utils) is not installed")
    f = tmp_path / f"{R.APP_ID}.desktop"
    f.write_text(R.desktop_entry("/opt/my apps/workbench"))
    out = subprocess.run([tool, str(f)], capture_output=True, text=True)
    assert out.returncode == 0 and "error" not in out.stdout + out.stderr, out.stdout + out.stderr
