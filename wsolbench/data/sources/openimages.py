"""OpenImages30k: the WSOL curation of OpenImages V5 by Choe et al. (CVPR 2020), 100 classes.

Layout (card: ``data_manifests/openimages.md``): the images and masks of
wsolevaluation's OpenImages download, and its ``metadata/OpenImages``::

    ROOT/{train,val,test}/<class MID>/<image>.jpg
    MASK_ROOT/{val,test}/<class MID>/<image>_m<class>_<hash>.png   one file per instance
    MASK_ROOT/{val,test}/<class MID>/<image>_ignore.png            ignore region
    METADATA/{train,val,test}/{image_ids,class_labels,image_sizes,localization}.txt

Converted by the ``wsolevaluation`` converter (:mod:`.metadata`), with all three
splits required: ``train`` (29,819 images, labels only), ``val`` (2,500 images,
masks) and ``test`` (5,000, masks). An image's instance masks are read as the
reference does (greyscale, non-zero), OR-ed and written as one PNG into the
manifest folder (the manifest's ``mask_root``), with its ignore map minus the
foreground beside it. Class names are the MID folder names (``01226z``).
Every fault is collected in one pass, as for that converter: images missing or
not decodable (unless ``--headers-only``), mask files missing or unreadable,
metadata lines that do not parse.
"""

from __future__ import annotations

from pathlib import Path

from wsolbench.data.sources.common import HEADERS_ONLY, Conversion, Problems, SourceOption, register_source
from wsolbench.data.sources.metadata import convert_metadata
from wsolbench.progress import Progress


@register_source(
    "openimages",
    summary="OpenImages30k (WSOL curation): 100 classes; val/test instance masks merged, with ignore regions",
    options=(
        SourceOption("metadata_root", "path", "wsolevaluation's metadata/OpenImages folder (train/, val/, test/). "
                     "Default: ROOT/metadata/OpenImages or ROOT/metadata when present."),
        SourceOption("mask_root", "path", "The folder the mask paths are relative to. Default: ROOT."),
        HEADERS_ONLY,
    ),
    version=2,
)
def convert_openimages(root: Path, out: Path, *, progress: Progress, jobs: int, problems: Problems,
                       metadata_root: Path | None = None, mask_root: Path | None = None,
                       headers_only: bool = False) -> Conversion:
    if metadata_root is None:
        for candidate in (root / "metadata" / "OpenImages", root / "metadata"):
            if (candidate / "test" / "image_ids.txt").is_file():
                metadata_root = candidate
                break
    return convert_metadata(root, out, progress=progress, jobs=jobs, problems=problems, metadata_root=metadata_root,
                            mask_root=mask_root, name="openimages", required=("train", "val", "test"),
                            headers_only=headers_only)
