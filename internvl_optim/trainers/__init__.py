"""Glue for trainers other than MMEngine's: HF ``Trainer`` (the ratio
guard, :mod:`.hf_callback`; phases over layers, :mod:`.layer_phase_callback`).
Imported on demand (needs ``transformers``)."""
