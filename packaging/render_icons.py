"""Render the application icon's PNG sizes (and a contact sheet) from the SVGs.

    .venv/bin/python packaging/render_icons.py            # writes resources/icons/app-<size>.png
    .venv/bin/python packaging/render_icons.py --sheet /tmp/icons.png   # also a preview of every icon
    .venv/bin/python packaging/render_icons.py --ico --icns  # also app.ico (Windows) / app.icns (macOS)

Uses PySide6's QSvgRenderer (this script is a build tool, outside the package, so
it may import Qt). The PNGs are committed; rerun this after editing app.svg.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QRectF, Qt  # noqa: E402
from PySide6.QtGui import QColor, QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 32, 48, 64, 128, 256)
ACTIONS = ("run", "stop", "open", "save", "compare", "export")


def renderer(svg: Path) -> QSvgRenderer:
    r = QSvgRenderer(str(svg))
    if not r.isValid():
        raise SystemExit(f"{svg} is not an SVG that Qt can render")
    return r


def render(svg: Path, size: int) -> QImage:
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer(svg).render(p, QRectF(0, 0, size, size))
    p.end()
    return img


def contact_sheet(out: Path) -> None:
    """Every icon at 16/24/48 px on a light and a dark strip, magnified 2x (for eyeballing)."""
    names = ACTIONS + ("app",)
    cell, sizes = 60, (16, 24, 48)
    w, h = cell * len(names), cell * len(sizes) * 2
    sheet = QImage(w, h, QImage.Format.Format_ARGB32_Premultiplied)
    p = QPainter(sheet)
    for band, bg in enumerate((QColor("#f4f5f7"), QColor("#26282c"))):
        p.fillRect(0, band * h // 2, w, h // 2, bg)
        for j, s in enumerate(sizes):
            for i, n in enumerate(names):
                img = render(ICONS / f"{n}.svg", s)
                y = band * h // 2 + j * cell + (cell - s) // 2
                p.drawImage(i * cell + (cell - s) // 2, y, img)
    p.end()
    sheet.scaled(w * 2, h * 2, Qt.AspectRatioMode.KeepAspectRatio,
                 Qt.TransformationMode.FastTransformation).save(str(out))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sheet", type=Path, help="also write a preview of every icon to this PNG")
    ap.add_argument("--ico", action="store_true", help="also write app.ico (Windows .exe icon, every size)")
    ap.add_argument("--icns", action="store_true", help="also write app.icns (macOS .app icon)")
    args = ap.parse_args(argv)
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 (fonts, image I/O)
    for n in ACTIONS + ("app",):
        renderer(ICONS / f"{n}.svg")   # every SVG must parse
    for s in SIZES:
        out = ICONS / f"app-{s}.png"
        if not render(ICONS / "app.svg", s).save(str(out)):
            raise SystemExit(f"could not write {out}")
        print(f"wrote {out.relative_to(ICONS.parents[1])}")
    if args.ico or args.icns:
        from PIL import Image   # Pillow writes multi-size .ico and .icns on every platform
        big = render(ICONS / "app.svg", 1024)
        tmp = ICONS / ".app-1024.png"
        big.save(str(tmp))
        try:
            with Image.open(tmp) as im:
                if args.ico:
                    im.save(ICONS / "app.ico", sizes=[(s, s) for s in SIZES])
                    print("wrote resources/icons/app.ico")
                if args.icns:
                    im.save(ICONS / "app.icns")
                    print("wrote resources/icons/app.icns")
        finally:
            tmp.unlink()
    if args.sheet:
        contact_sheet(args.sheet)
        print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
