"""The shipped topic taxonomy, validated as `load_config` does: what the edge hands the
extractor (`Config.taxonomy`) when a test builds an Enricher or a pool of its own."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import TaxonomyFile, load_taxonomy_file

ROOT = Path(__file__).resolve().parents[1]
TAXONOMY: TaxonomyFile = load_taxonomy_file(ROOT / "configs" / "topics.yaml")
