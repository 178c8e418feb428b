"""Supervised fine-tuning of the VLA: rendered samples from the anchor pairs and scenes (positive-only and
negative-enhanced views, :mod:`agents.sft.data`), the ``transformers.Trainer`` run (:mod:`agents.sft.trainer`), and
the CLIs ``python -m agents.sft.train`` and ``python -m agents.sft.compare``."""
