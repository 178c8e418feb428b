"""The output grammar of the drive task, applied identically when generating and when scoring by teacher forcing.

After the prompt the model writes ``{label text}<action><act_i>...<act_k></s>`` (:mod:`agents.vla.format`). Which
tokens may come next depends only on the tokens generated so far; there are four cases (:data:`CATEGORIES`):

* ``text``: no ``<action>`` yet and fewer than ``max_text_tokens`` text tokens: any free-text token or ``<action>``
  (no special token, no action token, no EOS);
* ``force_action``: no ``<action>`` yet and ``max_text_tokens`` text tokens written: only ``<action>``;
* ``codes``: after ``<action>``, fewer than ``tokens_per_trajectory`` action tokens: only action tokens;
* ``end``: all action tokens written: only EOS.

Disallowed logits are set to ``-inf`` before the softmax, so every generation parses into a trajectory and a
forced token has log-probability 0. :meth:`ActionGrammar.categories_for_sequences` gives the category of every
position of given sequences (teacher forcing), :class:`GrammarLogitsProcessor` applies the same rule inside
``transformers``' ``generate``: a sequence's probability under sampling equals the one :meth:`log_prob` computes.
:class:`GrammarState` is the incremental form the fast decoder (:mod:`agents.vla.fast_decoding`) advances token by
token (same categories, tested).
"""

from __future__ import annotations

from typing import Sequence

import torch
from transformers import LogitsProcessor

from agents.vla.tokenizer import VLATokens

CATEGORIES = ("text", "force_action", "codes", "end")
TEXT, FORCE_ACTION, CODES, END = range(4)


class ActionGrammar:
    """Allowed next tokens of the drive task (see the module docstring).

    Args:
        tokens: the VLA token ids.
        vocab_size: size of the model's logits (may exceed the tokenizer's length; extra ids are never allowed).
        tokens_per_trajectory: action tokens per trajectory.
        max_text_tokens: text tokens before ``<action>`` is forced.
        special_ids: further ids that are never free text (the tokenizer's own special tokens).
    """

    def __init__(self, tokens: VLATokens, vocab_size: int, tokens_per_trajectory: int, max_text_tokens: int,
                 special_ids: Sequence[int] = ()) -> None:
        if max_text_tokens < 1 or tokens_per_trajectory < 1:
            raise ValueError("ActionGrammar: max_text_tokens and tokens_per_trajectory must be >= 1")
        self.tokens = tokens
        self.tokens_per_trajectory = int(tokens_per_trajectory)
        self.max_text_tokens = int(max_text_tokens)
        table = torch.zeros((len(CATEGORIES), vocab_size), dtype=torch.bool)
        table[TEXT, : tokens.vocab_size] = True
        never = torch.as_tensor(sorted(set(tokens.special_ids.tolist()) | {int(i) for i in special_ids}))
        table[TEXT, never[never < vocab_size]] = False
        table[TEXT, tokens.action] = True
        table[FORCE_ACTION, tokens.action] = True
        table[CODES, torch.as_tensor(tokens.codes)] = True
        table[END, tokens.eos] = True
        self.table = table
        self._codes = torch.as_tensor(tokens.codes)

    def _category(self, has_action: torch.Tensor, n_text: torch.Tensor, n_codes: torch.Tensor) -> torch.Tensor:
        cat = torch.where(n_text >= self.max_text_tokens, FORCE_ACTION, TEXT)
        after = torch.where(n_codes >= self.tokens_per_trajectory, END, CODES)
        return torch.where(has_action, after, cat)

    def categories(self, generated: torch.Tensor, after_action: bool = False) -> torch.Tensor:
        """Category ``(N,)`` of the next token after ``generated (N, n)`` tokens (the part after the prompt);
        ``after_action``: the prompt already ends with ``<action>`` (a label written before generation, e.g. the
        label head's sentence), so only action tokens then EOS follow."""
        has_action = (generated == self.tokens.action).any(dim=1) | bool(after_action)
        n_text = torch.full(has_action.shape, generated.shape[1], dtype=torch.long, device=generated.device)
        n_codes = torch.isin(generated, self._codes.to(generated.device)).sum(dim=1)
        return self._category(has_action, n_text, n_codes)

    def categories_for_sequences(self, sequences: torch.Tensor) -> torch.Tensor:
        """Category ``(N, S)`` of every position ``j`` of ``sequences (N, S)``, given ``sequences[:, :j]``."""
        is_action = (sequences == self.tokens.action).long()
        is_code = torch.isin(sequences, self._codes.to(sequences.device)).long()
        before_action = torch.cumsum(is_action, dim=1) - is_action  # exclusive prefix counts
        has_action = before_action > 0
        position = torch.arange(sequences.shape[1], device=sequences.device).expand_as(sequences)
        n_codes = torch.cumsum(is_code, dim=1) - is_code
        return self._category(has_action, position, n_codes)

    def mask(self, logits: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        """``logits (..., V)`` with ``-inf`` where the token is not allowed in ``categories (...)``."""
        allowed = self.table.to(logits.device)[categories]
        return logits.masked_fill(~allowed, float("-inf"))


class GrammarLogitsProcessor(LogitsProcessor):
    """Applies an :class:`ActionGrammar` inside ``generate`` (tokens after ``prompt_length`` are the output)."""

    def __init__(self, grammar: ActionGrammar, prompt_length: int, after_action: bool = False) -> None:
        self.grammar = grammar
        self.prompt_length = int(prompt_length)
        self.after_action = bool(after_action)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return self.grammar.mask(scores, self.grammar.categories(input_ids[:, self.prompt_length :],
                                                                 self.after_action))


class GrammarState:
    """The grammar state of ``N`` rows being generated, advanced one token at a time (the incremental form of
    :meth:`ActionGrammar.categories`: same categories, without re-reading every token generated so far).

    Args:
        grammar: the output grammar.
        n_rows: rows generated together.
        device: where the state lives.
        after_action: the prompt already ends with ``<action>`` (see :meth:`ActionGrammar.categories`).
    """

    def __init__(self, grammar: ActionGrammar, n_rows: int, device: torch.device | str = "cpu",
                 after_action: bool = False) -> None:
        self.grammar = grammar
        self.has_action = torch.full((n_rows,), bool(after_action), dtype=torch.bool, device=device)
        self.n_codes = torch.zeros(n_rows, dtype=torch.long, device=device)
        self.n_tokens = 0
        self._table = grammar.table.to(device)
        self._is_code = torch.zeros(grammar.table.shape[1], dtype=torch.long, device=device)
        self._is_code[grammar._codes.to(device)] = 1

    def categories(self) -> torch.Tensor:
        """``(N,)`` category of each row's next token."""
        n_text = torch.full_like(self.n_codes, self.n_tokens)
        return self.grammar._category(self.has_action, n_text, self.n_codes)

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits (N, V)`` with ``-inf`` on the tokens the grammar forbids next."""
        return logits.masked_fill(~self._table[self.categories()], float("-inf"))

    def advance(self, tokens: torch.Tensor) -> None:
        """Record the generated ``tokens (N,)``."""
        self.has_action |= tokens == self.grammar.tokens.action
        self.n_codes += self._is_code[tokens]
        self.n_tokens += 1
