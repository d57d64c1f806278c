"""Changes to live objects, each explicit and idempotent, kept apart from
the pure rules: the safe-loading allow-list and MMEngine's local checkpoint
loader (:mod:`.safe_checkpoint_loading`), the optimizer's resume guard
(:mod:`.resume_guard`), and eval mode for the norms of frozen parts
(:mod:`.norm_eval`)."""
