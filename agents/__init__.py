"""Driving policies: the interface (:mod:`agents.base`), baselines, the VLA (:mod:`agents.vla`), its SFT
(:mod:`agents.sft`); anchor-based GRPO comes with the next learning stage."""
