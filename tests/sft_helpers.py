"""The tiny SFT setup shared by ``tests/test_sft.py`` and ``tests/test_decoder.py`` (their fixtures, ``sft_source``,
``sft_pairs``, ``sft_table`` and ``sft_codebook``, live in ``tests/conftest.py``): 5 SYNTHETIC bank scenes of seed 0,
the anchor pairs mined from their accident scenes (at most 6 scenes' worth), the rendered sample table with a 32 px
BEV, a 16-word segment codebook and a tiny random-init VLA."""

from __future__ import annotations

from agents.sft.data import SampleConfig
from envs.observation import ObservationConfig
from envs.render import BEVConfig

SFT_SAMPLES = SampleConfig(expert_frames_per_scene=2,
                           observation=ObservationConfig(bev=BEVConfig(height=32, width=32, meters_per_pixel=2.0,
                                                                       antialias=False)))
"""Two expert frames per scene, a 32 x 32 px BEV at 2 m/px."""


def tiny_source():
    """5 SYNTHETIC bank scenes (seed 0)."""
    from envs.scenes.sources import open_source

    return open_source("bank", num_scenes=5, seed=0)


def mined_pairs(source) -> list:
    """Anchor pairs of ``source``'s accident scenes, mined until at least 6 pairs are there."""
    from counterfactual.miner import mine_scene

    out = []
    for i in range(len(source)):
        if source[i].meta.is_accident and len(out) < 6:
            out += mine_scene(source[i], origin=source.origin(i)).pairs
    return out


def tiny_codebook(source):
    """A 16-word segment codebook fit on ``source``'s logs (every second frame)."""
    from agents.vla.codebook import CodebookConfig, TrajectoryCodebook, log_trajectories

    return TrajectoryCodebook.fit(log_trajectories([source[i] for i in range(len(source))], stride=2),
                                  CodebookConfig(size=16, mode="segment"))


def tiny_vla(codebook, seed: int = 0, label_source: str = "text"):
    """A tiny random-init VLA (model seed ``seed``) over ``codebook``, 40 text tokens at most; ``label_source``:
    :attr:`agents.vla.model.VLAConfig.label_source`."""
    import dataclasses

    from agents.vla.model import VLAConfig
    from agents.vla.policy import VLAPolicy
    from agents.vla.tokenizer import TokenizerConfig

    config = dataclasses.replace(VLAConfig.tiny(seed=seed), label_source=label_source)
    return VLAPolicy.build(codebook, config, TokenizerConfig(corpus_size=300), max_text_tokens=40)
