"""Pieces shared by the track and run models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

# Lowercase slugs keep folder names, URLs and ids interchangeable.
Slug = Annotated[
    str,
    Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        description="Lowercase letters, digits, '.', '_' or '-'; starts with a letter or digit; at most 64 characters.",
    ),
]

Direction = Literal["higher", "lower"]


class StrictModel(BaseModel):
    """Base for every file format: unknown fields are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=False)


class Link(StrictModel):
    title: str = Field(description="Human-readable label of the link.")
    url: str = Field(description="Absolute URL (https://...).", pattern=r"^https?://")


class Citation(StrictModel):
    """Where a result reported elsewhere was published (unconstrained boards)."""

    title: str = Field(description="Title of the paper, preprint or repository that reports the result.")
    url: str = Field(description="Link to the paper or repository.", pattern=r"^https?://")
    venue: str | None = Field(default=None, description="Venue or 'preprint'.")
    year: int | None = Field(default=None, ge=1950, le=2100, description="Year of publication.")
