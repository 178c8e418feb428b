"""Scenes, scene sources (built-in synthetic bank, DeepAccident reader), BEV rendering and Gymnasium environments."""
