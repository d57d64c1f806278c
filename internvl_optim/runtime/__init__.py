"""Changes to live objects, each explicit and idempotent, kept apart from
the pure rules: the optimizer's resume guard (:mod:`.resume_guard`),
freezing what a plan selects (:mod:`.freezing`), eval mode for the norms
of frozen parts (:mod:`.norm_eval`), phase factors in the optimizer step
(:mod:`.layer_phases`) and DeepSpeed ZeRO's partitions read and written by
parameter name (:mod:`.zero_state_by_name`).  (Safe checkpoint loading lives in
:mod:`internvl_optim.checkpoint.safe_loading`.)"""
