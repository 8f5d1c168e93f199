"""pydantic models: the single source of truth for the file formats and their JSON Schemas."""

from .common import SCHEMA_VERSION
from .run import CurvePoint, RunAnalysis, SeedResult
from .track import Track

__all__ = ["SCHEMA_VERSION", "CurvePoint", "RunAnalysis", "SeedResult", "Track"]
