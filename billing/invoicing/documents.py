"""What a process needs to deliver the documents it makes (receipts, credit notes), kept apart
from the delivery code so that the webhook's effect context can carry it without importing it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from billing.invoicing.views import Issuer


@dataclass(frozen=True, slots=True)
class DocumentDelivery:
    """What a process needs to deliver the documents it makes: the issuer (the PDF, the
    language's catalogs), where the outbox keeps files (``MEDIA_DIR``) and whether e-mail goes
    out (``SMTP_URL`` set)."""

    issuer: Issuer
    media_dir: Path
    email: bool = False
