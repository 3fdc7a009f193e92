"""The visual quality report (report.html) and its small chart helpers."""
