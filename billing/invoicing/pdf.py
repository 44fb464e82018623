"""An invoice as an A4 PDF (fpdf2) an EU accountant accepts (DESIGN §8, Directive 2006/112/EC
art. 226): issuer and buyer blocks (names, addresses, countries, VAT IDs, the issuer's legal
id), number, issue date (none on a draft, which is marked DRAFT across the page), supply
period, lines with quantity, net unit price and amount, VAT rate and amount, total, payment
terms, bank details and pay link; under reverse charge no VAT, the mention in the document's
language and both VAT IDs. Written in the tenant's language (en, fr, de; else
``DEFAULT_LANGUAGE``): labels from the message catalog (:mod:`billing.invoicing.labels`), that
language's number, currency and date formats (Babel, :class:`core.i18n.Translator`).

Any script prints: text is set in DejaVu Sans (matplotlib's font: Latin, Greek, Cyrillic,
Arabic, Hebrew...), shaped by HarfBuzz (Arabic joined and right to left), with Noto Sans CJK
(package ``noto-cjk-sans-jp-regular``) and the monochrome Noto Emoji (package
``manimgx-fonts``) as fallbacks; nothing is downloaded at run time. A character none of them
has is printed as U+FFFD, never dropped.

fpdf2 is imported when the first invoice is drawn: a process that never draws one does not pay
its start-up.
"""

from __future__ import annotations

import logging
import unicodedata
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from billing.invoicing.arithmetic import reverse_charge
from billing.invoicing.labels import Labels, labels_for
from billing.invoicing.views import InvoiceView, Issuer
from core.money import from_micros
from storage.states import INVOICE_CLOSED

if TYPE_CHECKING:
    from fpdf import FPDF

FONT = "DejaVu"
CJK_FONT = "NotoSansCJK"
EMOJI_FONT = "NotoEmoji"
#: What a character no embedded font has becomes (visible, never silently dropped).
PLACEHOLDER = "\ufffd"
#: Characters that draw nothing by themselves (joiners, variation selectors): dropped when no
#: font maps them, as they carry no text of their own.
_INVISIBLE = frozenset({"Cf", "Mn", "Me"})

# fontTools logs every subsetting step at INFO (~70 lines a PDF): only its warnings matter.
logging.getLogger("fontTools").setLevel(logging.WARNING)


def default_font_path() -> Path:
    """DejaVuSans.ttf from matplotlib's data directory (matplotlib is a dependency already)."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"


def cjk_font_path() -> Path:
    """Noto Sans CJK JP (Chinese, Japanese and Korean), shipped by its PyPI package."""
    import noto_cjk_sans_jp_regular

    return Path(str(noto_cjk_sans_jp_regular.FONT_PATH))


def emoji_font_path() -> Path:
    """Noto Emoji, monochrome outlines (a PDF font cannot be in colour)."""
    import manimgx_fonts

    return Path(manimgx_fonts.__file__).with_name("NotoEmoji[wght].ttf")


@lru_cache(maxsize=8)
def _covered(paths: tuple[Path, ...]) -> frozenset[int]:
    """Every code point one of the fonts maps (read once per process)."""
    from fontTools.ttLib import TTFont

    found: set[int] = set()
    for path in paths:
        with TTFont(str(path), lazy=True) as font:
            found.update(font.getBestCmap())
    return frozenset(found)


def printable(text: str, covered: frozenset[int]) -> str:
    """``text`` with each character no font has replaced by :data:`PLACEHOLDER`."""
    if all(ord(c) in covered or c in "\n\t" for c in text):
        return text
    out: list[str] = []
    for char in text:
        if ord(char) in covered or char in "\n\t":
            out.append(char)
        elif unicodedata.category(char) not in _INVISIBLE:
            out.append(PLACEHOLDER)
    return "".join(out)


class _Document:
    """The pieces of one invoice as printed: labels, formats and the fonts' coverage."""

    def __init__(self, view: InvoiceView, issuer: Issuer, font: Path) -> None:
        self.view = view
        self.issuer = issuer
        self.inv = view.invoice
        self.t = issuer.translator(view.tenant.language)
        self.language = self.t.language
        self.labels: Labels = labels_for(self.t)
        self.fonts = (font, cjk_font_path(), emoji_font_path())
        self.covered = _covered(self.fonts)
        self.draft = self.inv.status == "draft"
        self.reverse_charge = self.inv.vat_rate_ppm == 0 and reverse_charge(
            view.tenant.vat_id, issuer.country
        )

    @property
    def title(self) -> str:
        """``Invoice INV-…``, or ``Credit note CN-…`` (in the document's language)."""
        kind = self.labels.credit_note if self.inv.kind == "credit_note" else self.labels.invoice
        return f"{kind} {self.inv.number}"

    def text(self, value: str) -> str:
        return printable(value, self.covered)

    def money(self, micros: int) -> str:
        return self.t.money(from_micros(micros), self.inv.currency)

    def unit_price(self, micros: int) -> str:
        """A unit price as given (``0.333 EUR``): only amounts are rounded."""
        exact = from_micros(micros)
        if exact == exact.quantize(Decimal("0.01")):
            return self.money(micros)
        return f"{self.t.number(exact, '#,##0.00####')} {self.inv.currency}"

    def number(self, value: Decimal) -> str:
        return self.t.number(value)

    def date(self, at: datetime | date) -> str:
        return self.t.date(at)

    def country(self, code: str | None) -> str:
        return self.t.country(code) if code else ""

    def supply_period(self) -> str:
        """The month the invoice covers, else the day of supply (its issue date)."""
        if self.inv.period:
            year, month = (int(part) for part in self.inv.period.split("-"))
            return self.t.month(year, month)
        return "" if self.draft else self.date(self.inv.issued_at)

    def vat_label(self) -> str:
        rate = Decimal(self.inv.vat_rate_ppm) / 10_000
        return f"{self.labels.vat} {self.number(rate)} %"


def render_invoice(view: InvoiceView, issuer: Issuer, font_path: Path | None = None) -> bytes:
    from billing.invoicing.pdf_document import InvoicePDF

    font = font_path or default_font_path()
    doc = _Document(view, issuer, font)
    pdf = InvoicePDF(format="A4")
    pdf.set_title(doc.title)
    pdf.set_creator("Switchboard")
    pdf.set_lang(doc.language)
    bold = font.with_name("DejaVuSans-Bold.ttf")
    pdf.add_font(FONT, "", str(font))
    pdf.add_font(FONT, "B", str(bold if bold.exists() else font))
    pdf.add_font(CJK_FONT, "", str(doc.fonts[1]))
    pdf.add_font(EMOJI_FONT, "", str(doc.fonts[2]))
    pdf.set_fallback_fonts([CJK_FONT, EMOJI_FONT], exact_match=False)
    pdf.set_text_shaping(True)
    pdf.set_auto_page_break(auto=True, margin=20)
    pdf.add_page()
    if doc.draft:
        _draft_mark(pdf, doc)
    _header(pdf, doc)
    _parties(pdf, doc)
    _dates(pdf, doc)
    _lines(pdf, doc)
    _totals(pdf, doc)
    _footer(pdf, doc)
    return bytes(pdf.output())


def _draft_mark(pdf: FPDF, doc: _Document) -> None:
    """DRAFT in large grey letters across the page: a draft is not an invoice yet."""
    pdf.set_font(FONT, "B", 90)
    pdf.set_text_color(225, 225, 225)
    with pdf.rotation(45, x=pdf.w / 2, y=pdf.h / 2):
        pdf.set_xy(0, pdf.h / 2 - 20)
        pdf.cell(pdf.w, 40, doc.labels.draft, align="C")
    pdf.set_text_color(0, 0, 0)
    pdf.set_xy(pdf.l_margin, pdf.t_margin)


def _header(pdf: FPDF, doc: _Document) -> None:
    from fpdf.enums import XPos, YPos

    pdf.set_font(FONT, "B", 18)
    title = doc.title
    if doc.draft:
        title += f" ({doc.labels.draft})"
    pdf.cell(0, 10, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font(FONT, "", 10)
    if doc.inv.kind == "credit_note":  # names what it credits, instead of a status
        pdf.cell(0, 6, f"{doc.labels.credits} {doc.view.credits or ''}", new_x=XPos.LMARGIN,
                 new_y=YPos.NEXT)  # fmt: skip
    elif doc.inv.status in INVOICE_CLOSED:
        status = doc.labels.statuses.get(doc.inv.status, doc.inv.status)
        pdf.cell(0, 6, status.upper(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(2)


def _parties(pdf: FPDF, doc: _Document) -> None:
    from fpdf.enums import XPos, YPos

    labels, issuer, tenant = doc.labels, doc.issuer, doc.view.tenant
    seller = _join(
        issuer.name,
        issuer.address,
        doc.country(issuer.country),
        _labelled(labels.vat_id, issuer.vat_id),
        issuer.legal_id,
    )
    buyer = _join(
        tenant.name,
        tenant.address or "",
        doc.country(tenant.country),
        _labelled(labels.vat_id, tenant.vat_id or ""),
        tenant.email or "",
    )
    top = pdf.get_y()
    bottoms = []
    for x, title, body in ((pdf.l_margin, labels.seller, seller), (110, labels.buyer, buyer)):
        pdf.set_xy(x, top)
        pdf.set_font(FONT, "B", 10)
        pdf.cell(90, 6, title, new_x=XPos.LEFT, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 10)
        pdf.set_x(x)
        pdf.multi_cell(90, 5, doc.text(body), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        bottoms.append(pdf.get_y())
    pdf.set_y(max(bottoms) + 4)


def _dates(pdf: FPDF, doc: _Document) -> None:
    from fpdf.enums import XPos, YPos

    labels, inv = doc.labels, doc.inv
    rows: list[tuple[str, str]] = []
    if not doc.draft:
        # The issue date is the day the invoice was sent (or, for a receipt, paid): a draft
        # has none yet.
        rows.append((labels.issue_date, doc.date(inv.issued_at)))
    period = doc.supply_period()
    if period:
        rows.append((labels.supply_period, period))
    if inv.due_at and not doc.draft:
        rows.append((labels.due_date, doc.date(inv.due_at)))
    if inv.paid_at:
        rows.append((labels.paid_on, doc.date(inv.paid_at)))
    pdf.set_font(FONT, "", 10)
    for label, value in rows:
        pdf.cell(45, 6, f"{label}:")
        pdf.cell(0, 6, value, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(3)


WIDTHS = (85, 20, 45, 35)


def _lines(pdf: FPDF, doc: _Document) -> None:
    from fpdf.enums import XPos, YPos

    labels = doc.labels
    pdf.set_font(FONT, "B", 10)
    titles = (labels.description, labels.quantity, labels.unit_price, labels.amount)
    for width, title, align in zip(WIDTHS, titles, "LRRR", strict=True):
        pdf.cell(width, 7, title, border="B", align=align)
    pdf.ln()
    pdf.set_font(FONT, "", 9)
    for line in doc.view.lines:
        description = doc.text(line.description)
        height = _text_height(pdf, WIDTHS[0], description)
        if pdf.get_y() + height > pdf.page_break_trigger:
            pdf.add_page()
        y = pdf.get_y()
        pdf.multi_cell(WIDTHS[0], 5, description, new_x=XPos.RIGHT, new_y=YPos.TOP)
        pdf.cell(WIDTHS[1], 5, doc.number(line.quantity), align="R")
        pdf.cell(WIDTHS[2], 5, doc.unit_price(line.unit_price_micros), align="R")
        pdf.cell(WIDTHS[3], 5, doc.money(line.amount_micros), align="R")
        pdf.set_xy(pdf.l_margin, y + height)
    pdf.ln(3)


def _totals(pdf: FPDF, doc: _Document) -> None:
    from fpdf.enums import XPos, YPos

    inv, labels = doc.inv, doc.labels
    label_width = sum(WIDTHS[:3])
    for label, micros, style in (
        (labels.subtotal, inv.subtotal_micros, ""),
        (doc.vat_label(), inv.vat_micros, ""),
        (labels.total, inv.total_micros, "B"),
    ):
        pdf.set_font(FONT, style, 10)
        pdf.cell(label_width, 6, label, align="R")
        pdf.cell(WIDTHS[3], 6, doc.money(micros), align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if doc.reverse_charge:
        pdf.ln(2)
        pdf.set_font(FONT, "B", 10)
        pdf.multi_cell(
            0,
            5,
            f"{labels.reverse_charge}\n"
            f"{labels.vat_id} ({labels.seller}): {doc.issuer.vat_id or '-'} · "
            f"{labels.vat_id} ({labels.buyer}): {doc.view.tenant.vat_id}",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )


def _footer(pdf: FPDF, doc: _Document) -> None:
    from fpdf.enums import XPos, YPos

    inv, labels, issuer, view = doc.inv, doc.labels, doc.issuer, doc.view
    sections = [
        (labels.notes, inv.notes),
        (labels.payment_terms, issuer.payment_terms),
        (labels.bank, issuer.bank),
    ]
    for title, body in sections:
        if not body:
            continue
        pdf.ln(3)
        pdf.set_font(FONT, "B", 9)
        pdf.cell(0, 5, title, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 9)
        pdf.multi_cell(0, 4.5, doc.text(body), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if view.pay_url and view.payable:
        pdf.ln(3)
        pdf.set_font(FONT, "B", 9)
        pdf.cell(0, 5, labels.pay_online, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font(FONT, "", 8)
        pdf.set_text_color(0, 0, 200)
        pdf.multi_cell(0, 4, view.pay_url, link=view.pay_url, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(0, 0, 0)


def _text_height(pdf: FPDF, width: float, text: str) -> float:
    lines = pdf.multi_cell(width, 5, text, dry_run=True, output="LINES")
    return 5.0 * max(len(lines) if isinstance(lines, list) else 1, 1)


def _labelled(label: str, value: str) -> str:
    return f"{label}: {value}" if value else ""


def _join(*parts: str) -> str:
    return "\n".join(p for p in parts if p) or " "


def pdf_file_name(view: InvoiceView) -> str:
    return f"{view.number}.pdf"
