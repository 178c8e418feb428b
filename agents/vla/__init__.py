"""The vision-language-action policy: action codebook, tokenizer and processor, LLaVA model, policy, evaluation.

Public API (see each module):

* :class:`~agents.vla.codebook.TrajectoryCodebook` (``fit``, ``encode``, ``decode``, ``save``, ``load``) and
  :class:`~agents.vla.codebook.CodebookConfig`;
* :func:`~agents.vla.tokenizer.build_tokenizer`, :class:`~agents.vla.tokenizer.VLATokens`;
* :class:`~agents.vla.processor.VLAProcessor`;
* :class:`~agents.vla.model.VLAConfig`, :func:`~agents.vla.model.build_model`, :func:`~agents.vla.model.apply_lora`;
* :class:`~agents.vla.policy.VLAPolicy` (``build``, ``from_pretrained``, ``save_pretrained``, ``act``, ``predict``,
  ``sample``, ``log_prob``, ``target_sequences``), :class:`~agents.vla.policy.VLAOutput`,
  :class:`~agents.vla.policy.LogProbs`;
* :func:`~agents.vla.evaluate.evaluate_vla` and the ``python -m agents.vla.evaluate`` CLI.

Imports are lazy (``torch`` / ``transformers`` load on first use of a name).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrajectoryCodebook": "agents.vla.codebook",
    "CodebookConfig": "agents.vla.codebook",
    "build_tokenizer": "agents.vla.tokenizer",
    "VLATokens": "agents.vla.tokenizer",
    "VLAProcessor": "agents.vla.processor",
    "VLAConfig": "agents.vla.model",
    "build_model": "agents.vla.model",
    "apply_lora": "agents.vla.model",
    "VLAPolicy": "agents.vla.policy",
    "VLAOutput": "agents.vla.policy",
    "LogProbs": "agents.vla.policy",
    "evaluate_vla": "agents.vla.evaluate",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'agents.vla' has no attribute {name!r}")
