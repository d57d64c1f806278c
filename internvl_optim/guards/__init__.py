"""Checks the glue runs on what the core never sees: the optimizer's own
arguments (:mod:`.optimizer_arguments`), a scheduler's numbers
(:mod:`.scheduler_numbers`), live lrs against the plan (:mod:`.ratio_guard`),
a schedule's floor (:mod:`.schedule_floor`) and 16-bit trainable weights
(:mod:`.low_precision`).  Pure PyTorch, used by the MMEngine glue
(``engine/``), the HF Trainer glue (``trainers/``), resume checks
(``checkpoint/``) and the analyser (``analysis/``).
"""
