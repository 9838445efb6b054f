"""The stock_assets code location: everything under defs/, loaded by folder, each asset given
its owners and a reference to its source for the UI."""

import inspect
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
            key: _code_reference(assets) for assets in loaded.assets or [] for key in assets.keys
        }
        return loaded.map_asset_specs(
            func=lambda spec: spec.merge_attributes(
                metadata={CODE_REFERENCES: references[spec.key]}
            ).replace_attributes(owners=OWNERS)
        )


def _code_reference(assets: dg.AssetsDefinition) -> dg.CodeReferencesMetadataValue:
    """Where the asset's body is, through the decorators around it (`costed`)."""
    body = inspect.unwrap(assets.op.compute_fn.decorated_fn)
    _, line = inspect.getsourcelines(body)
    return dg.CodeReferencesMetadataValue(
        code_references=[
            dg.LocalFileCodeReference(file_path=inspect.getsourcefile(body), line_number=line)
        ]
    )
