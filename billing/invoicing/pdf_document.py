"""The fpdf2 document invoices are drawn on: ``FPDF`` with one fault of fallback fonts mended.

fpdf2 (2.8) draws a run of characters the main font lacks in a fallback font (CJK, emoji) and
then forgets that it changed the page's font: it believes the main font is still selected, so
the next line of a multi-line cell, or the next cell, is drawn with the main font's glyph
numbers in the fallback font (wrong glyphs; text extraction shows control characters). Every
rendered line here re-states its font first, which costs one ``Tf`` operator a line.

Imported only when an invoice is drawn (fpdf2 takes a while to import).
"""

from __future__ import annotations

from typing import Any

from fpdf import FPDF


class InvoicePDF(FPDF):
    def _render_styled_text_line(self, *args: Any, **kwargs: Any) -> Any:
        # The one place every cell and multi-cell line is drawn: start each from a known font.
        self.current_font_is_set_on_page = False
        return super()._render_styled_text_line(*args, **kwargs)
