"""The app's look: one dark-neutral palette, the Fusion style and the stylesheet.

    from pawlens.gui.theme import apply_theme, C_ACCENT
    apply_theme(app)                 # once per QApplication (idempotent)
    window.setStyleSheet(STYLESHEET)

Colours are named by role (``C_PANEL``, ``C_ACCENT``, ``C_WARN`` ...); widgets, the window and the
snapshot all take them from here.
"""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets

# Palette: a neutral dark frame area, a slightly lighter chrome, one accent.
C_BG = "#141518"
C_PANEL = "#1d1f23"
C_PANEL_2 = "#25282d"
C_TEXT = "#e8e9ec"
C_MUTED = "#9aa0a8"
C_ACCENT = "#4c9eff"
C_BAR = "#5d6b7d"
C_WARN = "#f0b429"
C_ERROR = "#ff6b6b"

_THEME_APPLIED = False


def apply_theme(app: QtWidgets.QApplication | None = None) -> None:
    """Fusion style with a dark-neutral palette (idempotent)."""
    global _THEME_APPLIED
    app = app or QtWidgets.QApplication.instance()
    if app is None or _THEME_APPLIED:
        return
    _THEME_APPLIED = True
    app.setStyle("Fusion")
    pal = QtGui.QPalette()
    role = QtGui.QPalette.ColorRole
    for r, c in ((role.Window, C_PANEL), (role.WindowText, C_TEXT), (role.Base, C_BG), (role.AlternateBase, C_PANEL_2),
                 (role.ToolTipBase, C_PANEL_2), (role.ToolTipText, C_TEXT), (role.Text, C_TEXT), (role.Button, C_PANEL_2),
                 (role.ButtonText, C_TEXT), (role.Highlight, C_ACCENT), (role.HighlightedText, "#ffffff"),
                 (role.PlaceholderText, C_MUTED), (role.Link, C_ACCENT)):
        pal.setColor(r, QtGui.QColor(c))
    pal.setColor(QtGui.QPalette.ColorGroup.Disabled, role.Text, QtGui.QColor("#62666d"))
    pal.setColor(QtGui.QPalette.ColorGroup.Disabled, role.ButtonText, QtGui.QColor("#62666d"))
    pal.setColor(QtGui.QPalette.ColorGroup.Disabled, role.WindowText, QtGui.QColor("#62666d"))
    app.setPalette(pal)
    f = app.font()
    if f.pointSizeF() < 10:
        f.setPointSizeF(10)
        app.setFont(f)


STYLESHEET = f"""
QMainWindow {{ background: {C_PANEL}; }}
QToolBar {{ background: {C_PANEL}; border: none; border-bottom: 1px solid #2c2f35; spacing: 4px; padding: 4px 6px; }}
QToolButton {{ padding: 4px 8px; border-radius: 4px; }}
QToolButton:hover {{ background: {C_PANEL_2}; }}
QToolButton:checked {{ background: #2f3a4a; }}
QStatusBar {{ background: {C_PANEL}; color: {C_MUTED}; border-top: 1px solid #2c2f35; }}
QStatusBar QLabel {{ color: {C_MUTED}; padding: 0 6px; }}
#Sidebar {{ background: {C_PANEL}; }}
#SidebarScroll {{ background: {C_PANEL}; border-left: 1px solid #2c2f35; }}
#SectionTitle {{ color: {C_MUTED}; font-size: 8.5pt; font-weight: 600; letter-spacing: 1px; padding-top: 6px; }}
#BigLabel {{ color: {C_TEXT}; font-size: 26pt; font-weight: 700; }}
#Confidence {{ color: {C_ACCENT}; font-size: 14pt; font-weight: 600; }}
#Muted {{ color: {C_MUTED}; }}
#FigValue {{ color: {C_TEXT}; font-family: "DejaVu Sans Mono", monospace; }}
#Badge {{ background: #2b3442; color: #cfe3ff; border-radius: 9px; padding: 2px 8px; font-size: 9pt; }}
#WarnBadge {{ background: #4a3a12; color: {C_WARN}; border-radius: 9px; padding: 2px 8px; font-size: 9pt; font-weight: 600; }}
#Banner {{ border-radius: 6px; padding: 6px 10px; }}
QComboBox, QSlider, QCheckBox {{ min-height: 22px; }}
"""

__all__ = ["C_ACCENT", "C_BAR", "C_BG", "C_ERROR", "C_MUTED", "C_PANEL", "C_PANEL_2", "C_TEXT", "C_WARN", "STYLESHEET",
           "apply_theme"]
