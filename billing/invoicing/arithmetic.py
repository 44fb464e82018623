"""Invoice arithmetic: each line rounded to the currency's minor unit (the cent), VAT computed
once on the subtotal and rounded the same way. Pure functions on micro-units.

Every line amount and total is at most :data:`MAX_INVOICE_AMOUNT` currency units: far above
any real invoice (Stripe charges at most 999,999.99 at once) and far below what a 64-bit
micro-unit column holds (9.2 × 10^12 units), so a huge quantity × price is refused with a
message instead of overflowing the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from billing.amounts import minor_places
from core.errors import SwitchboardError
from core.i18n import N_, Number, lazy
from core.money import MICROS_PER_UNIT, from_micros, to_micros

PPM = 1_000_000
#: The largest invoice line amount, subtotal or total, in currency units.
MAX_INVOICE_AMOUNT = Decimal(1_000_000_000)
_MAX_MICROS = int(MAX_INVOICE_AMOUNT) * MICROS_PER_UNIT
#: What :func:`checked` is given to name, in the reader's language.
_WHAT = {
    "line amount": N_("line amount"),
    "invoice subtotal": N_("invoice subtotal"),
    "invoice total": N_("invoice total"),
}


class InvoiceTooLarge(SwitchboardError):
    """A line or total above :data:`MAX_INVOICE_AMOUNT` (nothing is written)."""

    def __init__(self, what: str, micros: int, currency: str) -> None:
        message = lazy(
            "The {what} would be {amount} {currency}: an invoice line or total is at most "
            "{limit}. Check the amount and quantity.",
            what=lazy(_WHAT[what]) if what in _WHAT else what,
            amount=Number(from_micros(micros), "#,##0.00"),
            currency=currency.upper(),
            limit=Number(MAX_INVOICE_AMOUNT, "#,##0.00"),
        )
        super().__init__(str(message), user_message=message)


def checked(micros: int, what: str, currency: str) -> int:
    """``micros``, if within :data:`MAX_INVOICE_AMOUNT` either way; :class:`InvoiceTooLarge`."""
    if abs(micros) > _MAX_MICROS:
        raise InvoiceTooLarge(what, micros, currency)
    return micros


def round_to_minor(amount: Decimal, currency: str) -> int:
    """``amount`` (currency units) rounded half-up to the minor unit, in micros."""
    step = Decimal(1).scaleb(-minor_places(currency))
    return to_micros(amount.quantize(step, rounding=ROUND_HALF_UP))


def line_amount(quantity: Decimal | int, unit_price_micros: int, currency: str) -> int:
    """quantity × unit price, rounded half-up to the cent (a quantity may be ``1.5``)."""
    exact = from_micros(unit_price_micros) * quantity
    return checked(round_to_minor(exact, currency), "line amount", currency)


def ppm_of(rate: Decimal) -> int:
    """``Decimal("0.20")`` → ``200000``."""
    return int((rate * PPM).to_integral_value())


def rate_of(ppm: int) -> Decimal:
    """``200000`` → ``Decimal("0.20")`` (at least two places, more when the rate needs them)."""
    rate = Decimal(ppm) / PPM
    return rate.quantize(Decimal("0.01")) if ppm % 10_000 == 0 else rate.normalize()


@dataclass(frozen=True, slots=True)
class Totals:
    subtotal_micros: int
    vat_micros: int
    total_micros: int


def totals(line_amounts: Iterable[int], vat_rate_ppm: int, currency: str) -> Totals:
    subtotal = checked(sum(line_amounts), "invoice subtotal", currency)
    vat = round_to_minor(from_micros(subtotal) * vat_rate_ppm / PPM, currency)
    return Totals(subtotal, vat, checked(subtotal + vat, "invoice total", currency))


def scaled(micros: int, factor_ppm: int, currency: str) -> int:
    """``micros`` × a ppm factor (a plan's markup), rounded to the minor unit."""
    return round_to_minor(Decimal(micros) * factor_ppm / PPM / MICROS_PER_UNIT, currency)


# -- VAT: who pays it (EU reverse charge) -------------------------------------------------------

#: The EU member states (ISO 3166 alpha-2), between which B2B services are reverse-charged.
EU_COUNTRIES = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
#: VAT numbers whose prefix is not the ISO code: Greece's start with EL.
_VAT_PREFIX_COUNTRY = {"EL": "GR"}


def vat_id_country(vat_id: str | None) -> str | None:
    """The ISO country of a VAT ID (``DE123456789`` → ``DE``, ``EL…`` → ``GR``)."""
    if not vat_id or len(vat_id) < 2:
        return None
    prefix = vat_id[:2].upper()
    return _VAT_PREFIX_COUNTRY.get(prefix, prefix)


def reverse_charge(buyer_vat_id: str | None, issuer_country: str) -> bool:
    """True when the buyer, not the issuer, accounts for the VAT (Directive 2006/112/EC art.
    196): the issuer is in the EU and the buyer has a VAT ID of another EU member state. No
    issuer country configured: never (the rule cannot be applied without it)."""
    buyer = vat_id_country(buyer_vat_id)
    return (
        issuer_country in EU_COUNTRIES
        and buyer is not None
        and buyer in EU_COUNTRIES
        and buyer != issuer_country
    )


def vat_rate_ppm_for(
    tenant_vat_rate_ppm: int, buyer_vat_id: str | None, issuer_country: str
) -> int:
    """The VAT rate to invoice a buyer at: 0 under reverse charge, else the tenant's rate."""
    return 0 if reverse_charge(buyer_vat_id, issuer_country) else tenant_vat_rate_ppm
