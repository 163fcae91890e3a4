from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RowError:
    row: int
    errors: dict[str, list[str]]

    def as_dict(self) -> dict:
        return {"row": self.row, "errors": self.errors}


@dataclass
class IngestResult:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    row_errors: list[RowError] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.row_errors)

    def merge(self, other: IngestResult, row_offset: int = 0) -> None:
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.row_errors.extend(RowError(e.row + row_offset, e.errors) for e in other.row_errors)

    def as_dict(self, max_errors: int | None = None) -> dict:
        errors = self.row_errors if max_errors is None else self.row_errors[:max_errors]
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "errors": [e.as_dict() for e in errors],
        }
