"""Glue for trainers other than MMEngine's: HF ``Trainer``
(:mod:`.hf_callback`).  Imported on demand (needs ``transformers``)."""
