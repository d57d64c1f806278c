"""Inspection: the group table (logged and printed), the report of
``tools/analyze_param_groups.py``, and meta-device model builds."""
