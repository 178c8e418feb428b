"""VLA driving policies, negative-enhanced SFT and anchor-based GRPO (built in the learning-stage issues)."""
