"""The VLA's text tokenizer, built offline with ``tokenizers`` over the project's own grammars, and its special tokens.

Text model: byte-level BPE (lossless: ``decode(encode(s)) == s`` for any string, no unknown token) trained on a
corpus generated from the two grammars the model reads and writes:

* prompts of :func:`envs.observation.text_prompt` over observations sampled across the observation space (with
  :attr:`TokenizerConfig.prompt_state` ``"ego"`` / ``"agents"`` also as many prompts with the state block of
  :mod:`envs.prompt_state`, ego velocity and 0..K agents; the default corpus is unchanged);
* explanations of :func:`counterfactual.language.explain` over random label fields and seeds (every template and
  synonym), plus the no-hazard sentence of :mod:`agents.vla.format`.

Pre-tokenization isolates every phrase of the closed vocabulary (:data:`counterfactual.language.VOCABULARY`) and the
command words, and every digit, before the byte-level step; BPE may then merge *within* a piece (the template glue
between two vocabulary phrases becomes one token, each phrase one token), never across a phrase or a digit. So the
tokens stay compositional (an unseen class + sector combination is still two known tokens) and short (measured
with the default corpus: ~34 tokens per prompt, ~16 per explanation). A compound action (label schema 2.1, e.g.
``brake_swerve_left``) is said with two vocabulary phrases ("slow down and steer left",
:data:`counterfactual.language.COMPOUND_PHRASES`), so it needs no phrase of its own; the corpus samples every value
of :data:`counterfactual.schema.ACTIONS`, compound ones included (:data:`COMPOUND_SENTENCES` each).

Special tokens (:data:`BASE_SPECIAL_TOKENS` in the BPE vocabulary, :func:`add_vla_tokens` adds the rest to any
tokenizer, ours or a pretrained VLM's): ``<image>`` (expanded by the processor to one token per image patch),
task separators ``<drive>`` / ``<critique>`` / ``<correct>``, ``<negative>`` (a negative trajectory follows as
action tokens), ``<action>`` (the action tokens follow), and one ``<act_XXXX>`` per codeword.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

PAD, BOS, EOS, IMAGE = "<pad>", "<s>", "</s>", "<image>"
BASE_SPECIAL_TOKENS = (PAD, BOS, EOS, IMAGE)
"""Special tokens inside our BPE vocabulary (ids 0..3)."""
DRIVE, CRITIQUE, CORRECT = "<drive>", "<critique>", "<correct>"
"""Task separators that end every prompt: drive (label + action), critique a given negative (label), correct a
given negative (label + the positive's action)."""
TASKS = {"drive": DRIVE, "critique": CRITIQUE, "correct": CORRECT}
NEGATIVE, ACTION = "<negative>", "<action>"
"""``<negative>`` precedes a negative trajectory's action tokens in the prompt; ``<action>`` separates the label
text from the action tokens in the output."""
SEPARATOR_TOKENS = (DRIVE, CRITIQUE, CORRECT, NEGATIVE, ACTION)


def action_token(code: int) -> str:
    """The special token of codeword ``code`` (``<act_0042>``)."""
    return f"<act_{int(code):04d}>"


@dataclass(frozen=True)
class TokenizerConfig:
    """How the BPE text tokenizer is trained; every field is documented."""

    vocab_size: int = 1024
    """Upper bound of the BPE vocabulary (256 bytes + merges + base special tokens); the grammar corpus saturates
    below ~800, which is what it then gets."""
    corpus_size: int = 2000
    """Generated prompts and explanations each (4000 sentences by default; ~1 s to train)."""
    seed: int = 0
    """Seed of the corpus generator."""
    prompt_state: str = "none"
    """Prompts with the state block of :mod:`envs.prompt_state` in the corpus: ``"none"`` (default: the corpus
    and hence the tokenizer unchanged), ``"ego"`` or ``"agents"`` (``corpus_size`` more prompts with the ego's
    velocity and, for ``"agents"``, 0..``prompt_agents`` agents), so the state block's glue merges into few
    tokens. Any string still tokenizes losslessly (byte-level) with any setting."""
    prompt_agents: int = 4
    """Most agents per generated state block (an int >= 1; the policy built with this config reads observations
    with this many agent rows, :meth:`agents.vla.policy.VLAPolicy.build`)."""

    def __post_init__(self) -> None:
        from envs.prompt_state import check_prompt_options

        check_prompt_options("TokenizerConfig", self.prompt_state, self.prompt_agents)


# ------------------------------------------------------------------------------------------------------- corpus
def _random_observation(rng: np.random.Generator) -> dict[str, Any]:
    """A synthetic observation dict covering the prompt's value ranges (command, ego state, history)."""
    history = np.zeros((4, 3))
    history[0] = (-rng.uniform(0.0, 80.0), rng.uniform(-10.0, 10.0), rng.uniform(-1.6, 1.6))
    return {
        "command": int(rng.integers(3)),
        "ego_state": np.array([rng.uniform(0.0, 35.0), rng.uniform(-10.0, 5.0), rng.uniform(-1.5, 1.5)]),
        "history": history,
    }


def _random_state(rng: np.random.Generator, prompt_state: str, max_agents: int) -> dict[str, Any]:
    """The state entries of a synthetic observation (``"ego_velocity"`` and, for ``"agents"``, 0..``max_agents``
    agents over the BEV's range and the velocity range), at the prompt's precision."""
    from envs.prompt_state import AGENT_COLUMNS, CLASS_WORDS, ego_velocity

    out: dict[str, Any] = {"ego_velocity": ego_velocity(np.array([rng.uniform(-2.0, 35.0), rng.normal(0.0, 0.5)]))}
    if prompt_state == "agents":
        rows = np.zeros((max_agents, len(AGENT_COLUMNS)), dtype=np.float32)
        n = int(rng.integers(0, max_agents + 1))
        rows[:n, 0] = 1.0
        rows[:n, 1] = rng.integers(0, len(CLASS_WORDS), n)
        rows[:n, 2] = np.round(rng.uniform(-16.0, 48.0, n))
        rows[:n, 3] = np.round(rng.uniform(-32.0, 32.0, n))
        rows[:n, 4:6] = np.round(rng.normal(0.0, 8.0, (n, 2)), 1)
        out["agents"] = rows + 0.0
    return out


def _random_label_fields(rng: np.random.Generator, actions: Sequence[str] | None = None) -> dict[str, Any]:
    """Random label fields; the action drawn from ``actions`` (default: the atomic actions and ``none``)."""
    from counterfactual.schema import ATOMIC_ACTIONS, AGENT_CLASSES, CONFLICT_TYPES, NO_ACTION, RISK_LEVELS, SECTORS

    actions = tuple(ATOMIC_ACTIONS + (NO_ACTION,)) if actions is None else tuple(actions)

    return {
        "risk_agent_class": str(rng.choice(AGENT_CLASSES)),
        "sector": str(rng.choice(SECTORS)),
        "distance_m": float(rng.uniform(0.0, 80.0)),
        "conflict_type": str(rng.choice(CONFLICT_TYPES)),
        "risk_level": str(rng.choice(RISK_LEVELS)),
        "ttc_s": float("inf") if rng.random() < 0.3 else float(rng.uniform(0.0, 9.9)),
        "action": str(rng.choice(actions)),
    }


COMPOUND_SENTENCES = 8
"""Explanations per compound action in :func:`grammar_corpus` (each phrase pair of the 2 x 2 synonyms ~twice)."""


def grammar_corpus(size: int = 2000, seed: int = 0, prompt_state: str = "none",
                   prompt_agents: int = 4) -> Iterator[str]:
    """``size`` prompts and ``size`` explanations (interleaved, atomic actions), the no-hazard sentence, then
    :data:`COMPOUND_SENTENCES` explanations of each compound action (label schema 2.1; their own generator, so the
    rest of the corpus is the schema-2.0 one), then, unless ``prompt_state`` is ``"none"``, ``size`` prompts with
    a state block (:func:`_random_state`, their own generator); deterministic."""
    from counterfactual.language import NO_HAZARD_EXPLANATION, explain
    from envs.observation import text_prompt

    rng = np.random.default_rng(seed)
    yield NO_HAZARD_EXPLANATION
    for i in range(size):
        yield text_prompt(_random_observation(rng))
        yield explain(_random_label_fields(rng), seed=int(rng.integers(2**31)))
    from counterfactual.schema import COMPOUND_ACTIONS

    rng = np.random.default_rng([seed, 1])
    for action in COMPOUND_ACTIONS:
        for _ in range(COMPOUND_SENTENCES):
            yield explain(_random_label_fields(rng, (action,)), seed=int(rng.integers(2**31)))
    if prompt_state != "none":
        rng = np.random.default_rng([seed, 2])
        for _ in range(size):
            yield text_prompt({**_random_observation(rng), **_random_state(rng, prompt_state, prompt_agents)})


def isolated_phrases() -> tuple[str, ...]:
    """Phrases kept whole by the pre-tokenizer: the closed label vocabulary and the command words, longest first."""
    from counterfactual.language import VOCABULARY
    from envs.observation import COMMAND_WORDS

    phrases = {p for values in VOCABULARY.values() for synonyms in values.values() for p in synonyms}
    phrases |= set(COMMAND_WORDS.values())
    return tuple(sorted(phrases, key=lambda p: (-len(p), p)))


# ---------------------------------------------------------------------------------------------------- tokenizers
def train_text_tokenizer(config: TokenizerConfig = TokenizerConfig(), corpus: Iterable[str] | None = None):
    """Train the byte-level BPE ``tokenizers.Tokenizer`` (see the module docstring); no download.

    Returns a ``tokenizers.Tokenizer`` whose ids 0..3 are :data:`BASE_SPECIAL_TOKENS`.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    pattern = "|".join(re.escape(p) for p in isolated_phrases())
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=config.vocab_size, special_tokens=list(BASE_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    if corpus is None:
        corpus = grammar_corpus(config.corpus_size, config.seed, config.prompt_state, config.prompt_agents)
    tok.train_from_iterator(list(corpus), trainer)
    return tok


def add_vla_tokens(tokenizer: Any, codebook_size: int) -> int:
    """Add the separators and ``codebook_size`` action tokens (special, never split) to a
    ``PreTrainedTokenizerFast`` (ours or a pretrained VLM's); also ``<image>`` and a pad token when missing.
    Tokens already present are kept. Returns the number of tokens added."""
    vocab = tokenizer.get_vocab()
    wanted = [t for t in (IMAGE, *SEPARATOR_TOKENS, *(action_token(i) for i in range(codebook_size)))
              if t not in vocab]
    added = tokenizer.add_special_tokens({"extra_special_tokens": wanted}, replace_extra_special_tokens=False) \
        if wanted else 0
    if tokenizer.pad_token is None:
        added += tokenizer.add_special_tokens({"pad_token": PAD})
    return int(added)


def build_tokenizer(codebook_size: int, config: TokenizerConfig = TokenizerConfig()):
    """Our ``PreTrainedTokenizerFast``: the trained BPE (:func:`train_text_tokenizer`) + :func:`add_vla_tokens`."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=train_text_tokenizer(config), bos_token=BOS, eos_token=EOS, pad_token=PAD,
        padding_side="left", clean_up_tokenization_spaces=False, model_max_length=4096,
    )
    add_vla_tokens(tokenizer, codebook_size)
    return tokenizer


@dataclass(frozen=True, eq=False)
class VLATokens:
    """Ids of the VLA's special tokens in one tokenizer.

    Attributes:
        pad, bos, eos, image, negative, action: ids.
        tasks: task name -> separator id.
        codes: ``(K,)`` token id of each codeword.
        vocab_size: ``len(tokenizer)``.
    """

    pad: int
    bos: int | None
    eos: int
    image: int
    negative: int
    action: int
    tasks: dict[str, int]
    codes: np.ndarray
    vocab_size: int

    @classmethod
    def from_tokenizer(cls, tokenizer: Any, codebook_size: int) -> "VLATokens":
        """Look the tokens up (``ValueError`` naming the first missing one; run :func:`add_vla_tokens` first)."""
        vocab = tokenizer.get_vocab()

        def tid(token: str) -> int:
            if token not in vocab:
                raise ValueError(f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r}: missing VLA token {token!r} "
                                 f"(agents.vla.tokenizer.add_vla_tokens adds them)")
            return int(vocab[token])

        if tokenizer.eos_token is None or tokenizer.pad_token is None:
            raise ValueError("tokenizer: needs an eos and a pad token")
        return cls(
            pad=int(tokenizer.pad_token_id), bos=tokenizer.bos_token_id, eos=int(tokenizer.eos_token_id),
            image=tid(IMAGE), negative=tid(NEGATIVE), action=tid(ACTION),
            tasks={name: tid(tok) for name, tok in TASKS.items()},
            codes=np.array([tid(action_token(i)) for i in range(codebook_size)], dtype=np.int64),
            vocab_size=len(tokenizer),
        )

    @property
    def special_ids(self) -> np.ndarray:
        """Ids that are never free text: pad, bos, eos, image, separators and action tokens."""
        ids = [self.pad, self.eos, self.image, self.negative, self.action, *self.tasks.values()]
        if self.bos is not None:
            ids.append(self.bos)
        return np.unique(np.concatenate([np.array(ids, dtype=np.int64), self.codes]))

    def code_of(self, token_ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Codeword index of each action token id (-1 for other ids)."""
        lookup = {int(t): i for i, t in enumerate(self.codes)}
        return np.array([lookup.get(int(t), -1) for t in np.asarray(token_ids).reshape(-1)], dtype=np.int64)
