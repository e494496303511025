"""What a data module tells the rest of the code about its images."""

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ImageSpec:
    """What the rest of the code may know about a data module's images.

    ``name`` is a short key (file names, caches); ``title`` is for people; ``image_shape`` is
    (channels, height, width); ``class_names`` is None for unlabeled images.
    """

    name: str
    title: str
    image_shape: tuple[int, int, int]
    class_names: tuple[str, ...] | None = None

    @property
    def labeled(self) -> bool:
        return self.class_names is not None

    def record(self) -> dict[str, Any]:
        """As plain JSON values, for the files a run leaves."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "ImageSpec":
        names = record.get("class_names")
        return cls(
            record["name"],
            record["title"],
            tuple(record["image_shape"]),
            tuple(names) if names is not None else None,
        )
