"""``llama_cpp.server`` that also takes token ids as the ``prompt`` of ``/v1/completions``.

llama-cpp-python's server declares the prompt as text (``str | list[str]``) and answers a list of
token ids with HTTP 500, although the ``Llama`` object under it takes token ids as they are
(``Llama.create_completion(prompt=[...])``, no BOS added). The OpenAI legacy completions API,
vLLM and llama.cpp's own ``llama-server`` take them. This starts the same server with the request
declaration widened to ``list[int]`` as well, handed to ``Llama`` unchanged; the model, its
arithmetic, grammars, log-probabilities and the rest of the server are llama-cpp-python's own.

Run: python tests/token_prompt_server.py --model FILE.gguf --port 8000 --logits_all true ...
(the arguments of ``python -m llama_cpp.server``).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator


def widen_prompt() -> None:
    """Declare ``prompt`` as text, texts, or one list of token ids, before the app is built."""
    import llama_cpp.server.types as types

    class TokenPromptRequest(types.CreateCompletionRequest):  # type: ignore[misc]
        # the app hands ``prompt[0]`` of a list to ``Llama``: one list of ids is kept in a list
        prompt: str | list[str] | list[list[int]] = Field(default="")

        @field_validator("prompt", mode="before")
        @classmethod
        def token_ids_as_one_prompt(cls, value: Any) -> Any:
            if isinstance(value, list) and value and all(type(v) is int for v in value):
                return [value]
            return value

    types.CreateCompletionRequest = TokenPromptRequest  # type: ignore[misc]


if __name__ == "__main__":
    widen_prompt()
    from llama_cpp.server.__main__ import main

    main()
