"""Hydra entry points that tie scenes, mining, training and evaluation together."""
