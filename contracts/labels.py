"""The labels FrameSieve reports, and how a detector's own class names map onto them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

PERSON = "person"
VEHICLE = "vehicle"
PRODUCT_LABELS: tuple[str, ...] = (PERSON, VEHICLE)

# COCO class names (as in Darknet's coco.names) grouped into the product's labels.
DEFAULT_COCO_GROUPS: Mapping[str, tuple[str, ...]] = {
    PERSON: ("person",),
    VEHICLE: ("bicycle", "car", "motorbike", "bus", "truck"),
}


def build_class_map(
    class_names: Sequence[str], groups: Mapping[str, Sequence[str]] = DEFAULT_COCO_GROUPS
) -> dict[int, str]:
    """Map a detector's class index to a product label; classes in no group are left out.

    Raises ValueError naming the unknown class when a group refers to a class the model lacks, so a
    typo in configuration cannot silently drop a label.
    """
    index = {name: i for i, name in enumerate(class_names)}
    mapping: dict[int, str] = {}
    for label, members in groups.items():
        for member in members:
            if member not in index:
                raise ValueError(
                    f"label group {label!r} names class {member!r}, which the model does not have; "
                    f"known classes include {', '.join(list(class_names)[:10])}, ..."
                )
            mapping[index[member]] = label
    return mapping
