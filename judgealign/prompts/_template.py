"""One version of a registered prompt, wherever it is registered (in process or MLflow).

The same class serves the in-process registry of ``optimizers`` and MLflow's registry
(``judgealign.mlflow_integration.RegistryPrompt`` is this class): its :attr:`template` is
the candidate being evaluated when one is swapped in (see
:mod:`judgealign.prompts._overrides`), else the stored text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from judgealign.core._templates import format_template, single_brace, template_variables
from judgealign.prompts._overrides import prompt_override
from judgealign.prompts._steps import record_step

__all__ = ["PromptTemplate"]


@dataclass(frozen=True)
class PromptTemplate:
    """One version of a registered prompt.

    It answers what MLflow's ``PromptVersion`` answers in user code: ``name``,
    ``version``, ``uri``, ``template``, ``tags``, ``aliases``, ``commit_message``,
    ``response_format``, ``model_config``, ``variables``, ``format(**values)`` and
    ``to_single_brace_format()``.

    Attributes:
        name: the prompt's name in the registry.
        stored_template: the text as registered.
        version: the registry version (``None`` for a prompt that is not registered).
        commit_message: the note given at registration, if any.
        tags: the version's tags.
        aliases: the aliases that pointed at this version when it was loaded.
        response_format: the response format given at registration (kept, not used).
        model_config: the model configuration given at registration (kept, not used).
    """

    name: str
    stored_template: str = field(repr=False)
    version: int | None = None
    commit_message: str | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: {}, compare=False, repr=False)
    aliases: tuple[str, ...] = field(default=(), compare=False)
    response_format: Any = field(default=None, compare=False, repr=False)
    model_config: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def template(self) -> str:
        """The text in effect: the candidate being evaluated, else :attr:`stored_template`."""
        swapped = prompt_override(self.name)
        return self.stored_template if swapped is None else swapped

    @property
    def uri(self) -> str:
        """``prompts:/<name>/<version>``, or the bare name of an unregistered prompt."""
        return self.name if self.version is None else f"prompts:/{self.name}/{self.version}"

    @property
    def variables(self) -> frozenset[str]:
        """The template's ``{{ variable }}`` names."""
        return frozenset(template_variables(self.stored_template))

    def format(self, **values: object) -> str:
        """Fill in every variable of the text in effect.

        Inside an evaluation, the call is recorded as one of the record's prompt steps
        (see :mod:`judgealign.prompts._steps`).

        Raises:
            KeyError: when a variable has no value.
        """
        text = format_template(self.template, values)
        record_step(self.name, values)
        return text

    def to_single_brace_format(self) -> str:
        """The text in effect with ``{{ variable }}`` written ``{variable}`` (``str.format``
        style, as MLflow's ``PromptVersion.to_single_brace_format``)."""
        return single_brace(self.template)
