"""Run pages: a self-contained HTML report of one run, and `baton ui`, which serves them."""

from baton_cli.report.critical_path import CriticalPath, critical_path
from baton_cli.report.page import console_url, render_run_page

__all__ = ["CriticalPath", "console_url", "critical_path", "render_run_page"]
