"""`workbench` on a machine with no display explains itself instead of letting Qt abort."""


def test_window_without_a_display_says_what_to_do(monkeypatch, capsys):
    import sys

    from workbench import cli
    monkeypatch.setattr(sys, "platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    assert cli.main([]) == 1
    err = capsys.readouterr().err
    assert "no display found" in err and "workbench run" in err and "xvfb-run" in err
    assert cli.no_display_reason({"DISPLAY": ":0"}) is None
    assert cli.no_display_reason({"QT_QPA_PLATFORM": "offscreen"}) is None
