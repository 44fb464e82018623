"""Telegram Stars (DESIGN §8 "Telegram Stars"): packs and plans sold inside Telegram for Stars.

:mod:`.amounts` converts Stars, :mod:`.api` is what is asked of the Bot API, :mod:`.invoices`
writes the payment row and sends the invoice, :mod:`.checks` answers pre-checkout queries,
:mod:`.credit` applies ``successful_payment`` exactly once, :mod:`.refunds` takes a refunded
payment back once.
"""
