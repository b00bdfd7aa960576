"""Streamed, printable worksheets (openpyxl write-only mode) for the exports.

A :class:`StreamSheet` is set up before its first row, as write-only sheets require: column
widths, the title row, the header row frozen and repeated on every printed page, A4
landscape fitted to the page width, gridlines and page numbers when printed. Rows are then
appended one at a time and go straight to a temporary file, so memory does not grow with
the rows. Every cell of a kind shares one prototype style (dates as real dates with a
number format, wrapped text for long lists).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import Cell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from openpyxl.worksheet.pagebreak import Break

MAX_CELL_CHARS = 32000
"""Excel holds at most 32,767 characters in a cell."""
MAX_PAGE_BREAKS = 1000
"""Excel keeps at most 1,026 manual page breaks per sheet."""
PAPER_A4 = "9"
"""SpreadsheetML's paperSize code for A4."""

NUMBER_FORMATS = {
    "date": "yyyy-mm-dd",
    "datetime": "yyyy-mm-dd hh:mm",
    "md": "m/d",
    "int": "0",
    "num": "0.0",
    "pct": "0.0%",
}


@dataclass(frozen=True)
class Column:
    header: str
    width: float
    """In Excel's units, about one Latin character; a Chinese character takes about two."""
    fmt: str = "text"
    """text | wrap | date | datetime | md | int | num | pct."""


class _Styles:
    """Prototype style arrays, one per kind of cell, shared by every cell of that kind."""

    def __init__(self, ws: WriteOnlyWorksheet) -> None:
        def proto(**attrs: Any) -> Any:
            cell = Cell(ws)
            for name, value in attrs.items():
                setattr(cell, name, value)
            return cell._style

        top = Alignment(vertical="top")
        wrap = Alignment(vertical="top", wrap_text=True)
        bold = Font(bold=True)
        kinds = (*NUMBER_FORMATS, "text")
        self.body = {
            k: proto(number_format=NUMBER_FORMATS.get(k, "General"), alignment=top) for k in kinds
        }
        self.body["wrap"] = proto(alignment=wrap)
        self.total = {
            k: proto(font=bold, number_format=NUMBER_FORMATS.get(k, "General"), alignment=top)
            for k in kinds
        }
        self.total["wrap"] = proto(font=bold, alignment=wrap)
        self.title = proto(font=Font(bold=True, size=14))
        self.note = proto(font=Font(size=9, color="555555"))
        self.section = proto(font=Font(bold=True, size=12))
        self.header = proto(
            font=bold,
            alignment=Alignment(horizontal="center", vertical="center", wrap_text=True),
            fill=PatternFill("solid", fgColor="DDDDDD"),
        )


class Book:
    """A write-only workbook of :class:`StreamSheet`; saved complete or not at all.

    Use it as a context manager: if building the workbook fails, its sheets' streams are
    ended and their temporary files deleted (openpyxl would otherwise leave both behind).
    """

    def __init__(self) -> None:
        self.wb = Workbook(write_only=True)
        self.sheets: list[StreamSheet] = []
        self._styles: _Styles | None = None
        self._done = False

    def __enter__(self) -> Book:
        return self

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        if not self._done:
            self.discard()

    def sheet(
        self, name: str, title: str, columns: Sequence[Column], notes: Sequence[str] = ()
    ) -> StreamSheet:
        ws = self.wb.create_sheet(name)
        assert isinstance(ws, WriteOnlyWorksheet)
        if self._styles is None:
            self._styles = _Styles(ws)
        sheet = StreamSheet(ws, self._styles, title, columns, notes)
        self.sheets.append(sheet)
        return sheet

    def save(self, path: Path) -> None:
        """Write beside ``path`` and rename, so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        try:
            self.wb.save(partial)
            self._done = True
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)

    def discard(self) -> None:
        """End every sheet's stream and delete its temporary file, writing nothing."""
        self._done = True
        # Saving is openpyxl's one way to close write-only sheets and remove their files.
        with contextlib.suppress(Exception):
            self.wb.save(os.devnull)


class StreamSheet:
    """One streamed sheet: title (and note) rows, the frozen header, sections, rows, totals."""

    def __init__(
        self,
        ws: WriteOnlyWorksheet,
        styles: _Styles,
        title: str,
        columns: Sequence[Column],
        notes: Sequence[str] = (),
    ) -> None:
        self.ws = ws
        self.styles = styles
        self.columns = list(columns)
        self.rows = 0
        self.data_rows = 0
        self.sections = 0
        header_row = 2 + len(notes)
        # Write-only sheets write widths and panes with their first row: set them now.
        for i, c in enumerate(self.columns, start=1):
            ws.column_dimensions[get_column_letter(i)].width = c.width
        ws.freeze_panes = f"A{header_row + 1}"
        ws.print_title_rows = f"{header_row}:{header_row}"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = PAPER_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_options.gridLines = True
        ws.page_margins.left = ws.page_margins.right = 0.4
        ws.page_margins.top = ws.page_margins.bottom = 0.6
        ws.oddHeader.center.text = title
        ws.oddFooter.center.text = "第 &P 页，共 &N 页"
        self._append([self._cell(1, title, styles.title)])
        for note in notes:
            self._append([self._cell(1, note, styles.note)])
        self._append([self._cell(i, c.header, styles.header) for i, c in enumerate(columns, 1)])

    @property
    def title(self) -> str:
        return str(self.ws.title)

    def _append(self, cells: Sequence[Any]) -> None:
        self.ws.append(list(cells))
        self.rows += 1

    def section(self, text: str) -> None:
        """A section's title row; every section after the first starts a new printed page."""
        if self.sections and self.sections <= MAX_PAGE_BREAKS:
            self.ws.row_breaks.append(Break(id=self.rows))
        self.sections += 1
        self._append([self._cell(1, text, self.styles.section)])

    def row(self, values: Sequence[Any]) -> None:
        self._append(list(self._cells(values, self.styles.body)))
        self.data_rows += 1

    def total(self, values: Sequence[Any]) -> None:
        self._append(list(self._cells(values, self.styles.total)))

    def _cell(self, column: int, value: Any, style: Any) -> Cell:
        # openpyxl sets the row as it writes; the column makes the cell printable in errors.
        return Cell(self.ws, row=1, column=column, value=value, style_array=style)

    def _cells(self, values: Sequence[Any], protos: dict[str, Any]) -> Iterator[Any]:
        for i, (c, v) in enumerate(zip(self.columns, values, strict=False), start=1):
            if v is None or v == "":
                yield None
                continue
            yield self._cell(i, *self._styled(c, v, protos))

    @staticmethod
    def _styled(c: Column, v: Any, protos: dict[str, Any]) -> tuple[Any, Any]:
        """The value and its style: the column's format where the value fits it (a count in
        a date column, as in a 小计 row, is a number)."""
        if isinstance(v, str):
            if len(v) > MAX_CELL_CHARS:
                v = v[:MAX_CELL_CHARS] + "…"
            return v, protos["wrap" if c.fmt == "wrap" else "text"]
        if isinstance(v, date):
            dated = c.fmt in ("date", "datetime", "md")
            return v, protos[c.fmt if dated else "datetime" if isinstance(v, datetime) else "date"]
        if c.fmt in ("int", "num", "pct"):
            return v, protos[c.fmt]
        return v, protos["int" if isinstance(v, int) else "num"]
