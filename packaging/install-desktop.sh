#!/bin/sh
# Add the unpacked workbench bundle to this user's application menu (freedesktop.org desktops).
#   ./install-desktop.sh            # from inside the unpacked bundle folder
#   ./install-desktop.sh --remove
# build_linux.sh copies this script into the bundle, next to the workbench binary.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
ID=meta-learning-workbench
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
ICONS="$HERE/_internal/resources/icons"
if [ "${1:-}" = "--remove" ]; then
  rm -f "$DATA/applications/$ID.desktop" "$DATA/icons/hicolor/scalable/apps/$ID.svg"
  for s in 16 32 48 64 128 256; do rm -f "$DATA/icons/hicolor/${s}x${s}/apps/$ID.png"; done
  echo "removed the menu entry and icons of $ID from $DATA"; exit 0
fi
[ -x "$HERE/workbench" ] || { echo "install-desktop.sh: no workbench program in $HERE" >&2; exit 1; }
case "$HERE" in *[!A-Za-z0-9/._-]*) EXEC="\"$HERE/workbench\"";; *) EXEC="$HERE/workbench";; esac
mkdir -p "$DATA/applications" "$DATA/icons/hicolor/scalable/apps"
sed -e "s|@EXEC@|$EXEC|" -e "s|@TRYEXEC@|$HERE/workbench|" -e "s|@ICON@|$ID|" \
    "$HERE/_internal/resources/workbench.desktop" > "$DATA/applications/$ID.desktop"
cp "$ICONS/app.svg" "$DATA/icons/hicolor/scalable/apps/$ID.svg"
for s in 16 32 48 64 128 256; do
  mkdir -p "$DATA/icons/hicolor/${s}x${s}/apps"
  cp "$ICONS/app-$s.png" "$DATA/icons/hicolor/${s}x${s}/apps/$ID.png"
done
command -v update-desktop-database >/dev/null && update-desktop-database -q "$DATA/applications" || true
command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" || true
echo "wrote $DATA/applications/$ID.desktop and the icons; the menu shows 'Meta-Learning Workbench'"
