"""Inspection: the group table (logged and printed,
:mod:`.group_table`), the report of ``tools/analyze_param_groups.py``
(:mod:`.param_group_report`), meta-device model builds
(:mod:`.meta_device`), memory per rank (:mod:`.memory_per_rank`) and the
timm oracle (:mod:`.timm_oracle`)."""
