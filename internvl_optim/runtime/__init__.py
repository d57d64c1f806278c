"""Changes to live objects, each explicit and idempotent, kept apart from
the pure rules: the optimizer's resume guard (:mod:`.resume_guard`),
freezing what a plan selects (:mod:`.freezing`) and eval mode for the norms
of frozen parts (:mod:`.norm_eval`).  (Safe checkpoint loading lives in
:mod:`internvl_optim.checkpoint.safe_loading`.)"""
