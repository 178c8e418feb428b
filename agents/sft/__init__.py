"""Supervised fine-tuning of the VLA: rendered samples from the anchor pairs and scenes (positive-only and
negative-enhanced views, :mod:`agents.sft.data`), the ``transformers.Trainer`` run (:mod:`agents.sft.trainer`), and
the CLI ``python -m agents.sft.train`` (one run; both views over seeds:
``python -m experiments.run +experiment=sft_compare -m seed=0,1,2``)."""
