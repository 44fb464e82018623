"""An invoice as a one-page (more when it has many lines) A4 PDF, with fpdf2.

Text is set in DejaVu Sans, the TrueType font matplotlib ships, so €, accents and Greek,
Cyrillic, Arabic or Hebrew tenant names print (it has no CJK glyphs).

fpdf2 is imported when the first invoice is drawn: a process that never draws one does not pay
its 0.3 s of start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from billing.invoice_views import InvoiceView, Issuer
from storage.states import INVOICE_CLOSED

if TYPE_CHECKING:
    from fpdf import FPDF

FONT = "DejaVu"


def default_font_path() -> Path:
    """DejaVuSans.ttf from matplotlib's data directory (matplotlib is a dependency already)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def render_invoice(view: InvoiceView, issuer: Issuer, font_path: Path | None = None) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    font = font_path or default_font_path()
    bold = font.with_name("DejaVuSans-Bold.ttf")
    inv = view.invoice
    pdf = FPDF(format="A4")
    pdf.set_title(f"Invoice {inv.number}")
    pdf.set_creator("Switchboard")
    pdf.add_font(FONT, "", str(font))
    pdf.add_font(FONT, "B", str(bold if bold.exists() else font))
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()

    pdf.set_font(FONT, "B", 18)
    pdf.cell(0, 10, f"Invoice {inv.number}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    if inv.status in INVOICE_CLOSED:
        pdf.cell(0, 6, inv.status.upper(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)

    top = pdf.get_y()
    pdf.set_font(FONT, "B", 10)
    pdf.cell(90, 6, "From", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    pdf.multi_cell(
        90,
        5,
        _lines(issuer.name, issuer.address, _vat_id(issuer.vat_id)),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    left_bottom = pdf.get_y()
    pdf.set_xy(110, top)
    pdf.set_font(FONT, "B", 10)
    pdf.cell(90, 6, "Bill to", new_x=XPos.LEFT, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    pdf.multi_cell(
        90,
        5,
        _lines(view.tenant.name, view.tenant.email or ""),
        new_x=XPos.LMARGIN,
        new_y=YPos.NEXT,
    )
    pdf.set_y(max(left_bottom, pdf.get_y()) + 4)

    dates = [f"Issued: {inv.issued_at:%Y-%m-%d}"]
    if inv.due_at:
        dates.append(f"Due: {inv.due_at:%Y-%m-%d}")
    if inv.paid_at:
        dates.append(f"Paid: {inv.paid_at:%Y-%m-%d}")
    if inv.period:
        dates.append(f"Period: {inv.period}")
    pdf.cell(0, 6, "    ".join(dates), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)

    widths = (100, 15, 35, 35)
    pdf.set_font(FONT, "B", 10)
    for width, title, align in zip(
        widths, ("Description", "Qty", "Unit price", "Amount"), "LRRR", strict=True
    ):
        pdf.cell(width, 7, title, border="B", align=align)
    pdf.ln()
    pdf.set_font(FONT, "", 9)
    for line in view.lines:
        height = _text_height(pdf, widths[0], line.description)
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()
        y = pdf.get_y()
        pdf.multi_cell(widths[0], 5, line.description, new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.cell(widths[1], 5, str(line.quantity), align="R")
        pdf.cell(widths[2], 5, view.unit_price(line.unit_price_micros), align="R")
        pdf.cell(widths[3], 5, view.money(line.amount_micros), align="R")
        pdf.set_xy(pdf.l_margin, y + height)
    pdf.ln(3)

    label_width = sum(widths[:3])
    vat_label = view.vat_label
    for label, micros, style in (
        ("Subtotal", inv.subtotal_micros, ""),
        (vat_label, inv.vat_micros, ""),
        ("Total", inv.total_micros, "B"),
    ):
        pdf.set_font(FONT, style, 10)
        pdf.cell(label_width, 6, label, align="R")
        pdf.cell(widths[3], 6, view.money(micros), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if inv.notes:
        pdf.ln(4)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(0, 5, f"Notes: {inv.notes}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if view.pay_url and view.payable:
        pdf.ln(4)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(0, 6, "Pay online:", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 8)
        pdf.set_text_color(0, 0, 200)
        pdf.multi_cell(0, 4, view.pay_url, link=view.pay_url, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())


def _text_height(pdf: FPDF, width: float, text: str) -> float:
    lines = pdf.multi_cell(width, 5, text, dry_run=True, output="LINES")
    return 5.0 * max(len(lines) if isinstance(lines, list) else 1, 1)


def _vat_id(vat_id: str) -> str:
    return f"VAT ID: {vat_id}" if vat_id else ""


def _lines(*parts: str) -> str:
    return "\n".join(p for p in parts if p) or " "


def pdf_file_name(view: InvoiceView) -> str:
    return f"{view.number}.pdf"
