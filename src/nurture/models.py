"""Imports every module that defines tables, so ``Base.metadata`` is complete."""

from nurture.records import models as records_models

__all__ = ["records_models"]
