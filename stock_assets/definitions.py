"""The stock_assets code location: everything under defs/, loaded by folder, each asset given
its owners and a reference to its source for the UI."""

import warnings
from pathlib import Path

import dagster as dg

from stock_assets.defs.metadata import OWNERS

CODE_REFERENCES = "dagster/code_references"


@dg.definitions
def defs() -> dg.Definitions:
    loaded = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
    with warnings.catch_warnings():
        # Code references are beta and mapping specs is preview in Dagster 1.13: both are what
        # the UI reads, and the warnings would print at every load of the code location.
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        references = {
            spec.key: spec.metadata[CODE_REFERENCES]
            for assets in dg.with_source_code_references(loaded.assets or [])
            for spec in getattr(assets, "specs", [assets])
        }
        return loaded.map_asset_specs(
            func=lambda spec: spec.merge_attributes(
                metadata={CODE_REFERENCES: references[spec.key]}
            ).replace_attributes(owners=OWNERS)
        )
