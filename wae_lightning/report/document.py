"""A report as one document, a list of blocks, that ``render`` writes as Markdown, HTML and CSV:
each format is written once, from the same blocks."""

from dataclasses import dataclass, field
from pathlib import Path

from wae_lightning.report.tables import Table


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Figure:
    caption: str
    path: Path
    heading: bool = False
    """Whether the caption is also a heading (the dataset's panels) or only a caption."""


Block = Heading | Paragraph | Table | Figure


@dataclass
class Document:
    """The report's title and blocks, and the rows of its ``metrics.csv``: one per run."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    csv_columns: list[str] = field(default_factory=list)
    csv_rows: list[dict[str, object]] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)
