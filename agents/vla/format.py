"""The VLA's sequence layout: prompt and target strings, the no-hazard sentence, and parsing a generation back.

Prompt (input) and target (output) of one sample, as text with special tokens (:mod:`agents.vla.tokenizer`)::

    <s><image>{text prompt}[<negative><act_i>...]<task>      # <task>: <drive> | <critique> | <correct>
    {explanation}<action><act_j>...</s>                       # drive, correct
    {explanation}</s>                                         # critique

``{text prompt}`` is :func:`envs.observation.text_prompt` of the observation; ``<image>`` is expanded by the
processor to one token per image patch; the optional ``<negative>`` part gives a negative trajectory as action
tokens (failure feedback and correction samples of negative-enhanced SFT). ``{explanation}`` is a sentence of the
explanation grammar (:mod:`counterfactual.language`): the mined label's explanation in risky moments, else
:data:`counterfactual.language.NO_HAZARD_EXPLANATION`.

No-hazard target: states without risk (normal driving, safe stretches of expert logs) get one fixed sentence built
from the closed vocabulary, so :func:`counterfactual.language.parse_explanation` reads risk level ``none`` and
action ``keep_lane`` from it, and no agent class, sector or conflict type (it names no hazard).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from agents.vla.tokenizer import ACTION, BOS, EOS, IMAGE, NEGATIVE, TASKS, action_token



def action_text(codes: Sequence[int] | np.ndarray) -> str:
    """Action tokens of codeword indices ``codes (L,)`` as text."""
    return "".join(action_token(int(c)) for c in np.asarray(codes).reshape(-1))


def prompt_text(prompt: str, task: str = "drive", negative_codes: Sequence[int] | np.ndarray | None = None) -> str:
    """The input string (see the module docstring); ``negative_codes`` only for ``critique`` / ``correct``."""
    if task not in TASKS:
        raise ValueError(f"task: expected one of {tuple(TASKS)}, got {task!r}")
    if (negative_codes is None) != (task == "drive"):
        raise ValueError(f"task {task!r}: a negative trajectory is {'not ' if task == 'drive' else ''}expected")
    negative = "" if negative_codes is None else NEGATIVE + action_text(negative_codes)
    return f"{BOS}{IMAGE}{prompt}{negative}{TASKS[task]}"


def target_text(explanation: str, codes: Sequence[int] | np.ndarray | None) -> str:
    """The output string: the explanation, then ``<action>`` + the action tokens (None: text only), then EOS."""
    if any(tok in explanation for tok in (ACTION, EOS, "<act_")):
        raise ValueError(f"explanation contains a special token: {explanation!r}")
    return explanation + ("" if codes is None else ACTION + action_text(codes)) + EOS


@dataclass(frozen=True)
class ParsedOutput:
    """A generated continuation split into its parts.

    Attributes:
        text: the explanation text (before ``<action>``).
        codes: ``(L,)`` codeword indices after ``<action>`` (empty when none were generated).
        complete: ``<action>`` was generated followed by the expected number of codes.
    """

    text: str
    codes: np.ndarray
    complete: bool


def parse_output(token_ids: Sequence[int] | np.ndarray, tokenizer, tokens, tokens_per_trajectory: int) -> ParsedOutput:
    """Split generated token ids (after the prompt; padding and EOS ignored) into text and action codes.

    Args:
        token_ids: ``(L,)`` generated ids.
        tokenizer: the tokenizer (decodes the text part).
        tokens: :class:`agents.vla.tokenizer.VLATokens` of that tokenizer.
        tokens_per_trajectory: codes expected after ``<action>``.
    """
    ids = [int(t) for t in np.asarray(token_ids).reshape(-1) if int(t) not in (tokens.pad, tokens.eos)]
    cut = ids.index(tokens.action) if tokens.action in ids else len(ids)
    text = tokenizer.decode(ids[:cut], skip_special_tokens=True)
    codes = tokens.code_of(ids[cut + 1 :]) if cut < len(ids) else np.zeros(0, dtype=np.int64)
    codes = codes[codes >= 0][:tokens_per_trajectory]
    return ParsedOutput(text=text, codes=codes, complete=cut < len(ids) and len(codes) == tokens_per_trajectory)
