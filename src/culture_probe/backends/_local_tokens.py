"""Prompts as the model's own token ids, for servers that take token ids (``prompt_tokens=local``).

A server renders a chat with its chat template and tokenizes it with its own tokenizer. That
tokenizer need not split a text as the model's own does: llama.cpp reads the blank line before
"1. Very important" as one token "\\n\\n", where SmolLM2's tokenizer (the one the model was trained
with, and the one the ``hf`` backend uses) reads "\\n", "\\n". The model then sees other tokens
on a server than on ``hf``, and its answers move (docs/openai-backend.md, "Prompt tokens").

With ``prompt_tokens=local`` the ``openai`` backend renders the chat and tokenizes it here, exactly
as the ``hf`` backend does (the chat template of the tokenizer, then ``encode`` without special
tokens), and sends the ids as the ``prompt`` of ``/completions``: the OpenAI legacy completions
API, vLLM and llama.cpp's ``llama-server`` take a list of token ids there. Labels scored exactly are
appended as the ids this tokenizer gives them, and a spelling counts where its first token spells
the label, by the rule the ``hf`` backend applies (:func:`culture_probe.backends.labels.label_token_ids`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from culture_probe.errors import InputError

#: where the token ids of a prompt come from: the server's template and tokenizer, or the model's
PROMPT_TOKENS = ("server", "local")


class LocalTokenizer:
    """The model's own tokenizer and chat template, loaded as the ``hf`` backend loads them.

    Args:
        source: a ``.gguf`` file, a model folder, ``embedded`` or a hub id (what ``--model``
            takes on ``hf``).

    Raises:
        InputError: nothing at ``source`` loads as a tokenizer with a chat template (the message
            names the ``tokenizer`` option).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokenizer = _load_tokenizer(source)
        if not getattr(self.tokenizer, "chat_template", None):
            raise InputError(
                f"--option tokenizer: the tokenizer of {source!r} has no chat template; expected "
                "the model's own (a .gguf file, a model folder with tokenizer_config.json)"
            )
        self._cache: dict[str, list[int]] = {}

    def prompt_ids(self, messages: Sequence[Mapping[str, str]]) -> list[int]:
        """The ids of a chat ready for the assistant's answer, as ``hf`` encodes it."""
        text = self.tokenizer.apply_chat_template(
            list(messages), tokenize=False, add_generation_prompt=True
        )
        return [int(i) for i in self.tokenizer.encode(str(text), add_special_tokens=False)]

    def text_ids(self, text: str) -> list[int]:
        """The ids of a text on its own (a label spelling appended after a prompt)."""
        if text not in self._cache:
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            self._cache[text] = [int(i) for i in ids]
        return self._cache[text]

    def tokens(self, text: str) -> list[tuple[int, str]]:
        """The ids of a text on its own with each one's text, as a server names written tokens."""
        return [(i, self.decode([i])) for i in self.text_ids(text)]

    def spells_label(self, spelling: str) -> bool:
        """Whether the first token of ``spelling`` is the label itself ("1", not " " of " 1").

        The rule of :func:`culture_probe.backends.labels.label_token_ids`, so that a spelling the
        ``hf`` backend counts as 0 is not asked of the server either.
        """
        ids = self.text_ids(spelling)
        return bool(ids) and str(self.tokenizer.decode(ids[:1])).strip() == spelling.strip()

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids)))


def _load_tokenizer(source: str) -> Any:
    """The tokenizer ``hf`` uses for ``source``: for a GGUF file, the one transformers builds from it.

    The ``hf`` backend's cached safetensors copy of a GGUF model saves the tokenizer that
    ``AutoTokenizer.from_pretrained(folder, gguf_file=...)`` builds (:mod:`culture_probe.models`);
    it is built here the same way, without dequantizing the weights.
    """
    from transformers import AutoTokenizer

    from culture_probe.models import load_pretrained, resolve_model

    try:
        model = resolve_model(source)
    except InputError as error:
        raise InputError(f"--option tokenizer: {error}") from error
    if model.gguf_file:
        return load_pretrained(AutoTokenizer, model.location, model, gguf_file=model.gguf_file)
    return load_pretrained(AutoTokenizer, model.location, model)


def default_tokenizer_source(server_model: str) -> str:
    """The ``.gguf`` file the server names as its model, the default ``tokenizer``.

    Raises:
        InputError: the server's model is no local ``.gguf`` file, so ``tokenizer`` must be named.
    """
    if server_model.endswith(".gguf") and Path(server_model).is_file():
        return server_model
    raise InputError(
        f"--option prompt_tokens=local needs the model's tokenizer: the server's model "
        f"{server_model!r} is no .gguf file here, so name it with --option tokenizer=PATH "
        "(a .gguf file, a model folder, 'embedded' or a hub id)"
    )
