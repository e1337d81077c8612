"""workbench.gui"""
