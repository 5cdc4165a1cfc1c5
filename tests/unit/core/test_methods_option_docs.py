"""methods.option_docs: an option's description is the comment beside its default, read from the source."""

from __future__ import annotations

from dataclasses import dataclass

from fairbench.methods import option_docs


@dataclass(frozen=True)
class _Base:
    alpha: float = 1.0  # the base's alpha
    beta: int = 2  # beta, from the base
    gamma: str = "x"

    def method(self) -> int:  # not an option
        return 1


@dataclass(frozen=True)
class _Child(_Base):
    alpha: float = 3.0  # the child's alpha wins
    delta: bool = True  # new in the child


def test_comments_beside_defaults_describe_options_and_subclasses_override() -> None:
    docs = option_docs(_Child)
    assert docs["alpha"] == "the child's alpha wins"
    assert docs["beta"] == "beta, from the base"
    assert docs["delta"] == "new in the child"
    assert "gamma" not in docs  # no comment, no description
    assert option_docs(_Base)["alpha"] == "the base's alpha"
