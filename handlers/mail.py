"""E-mail as a channel of the outbox: invoices and receipts to a tenant's address.

``SMTP_URL`` is ``smtp://user:pass@host:587`` (STARTTLS when the server offers it) or
``smtps://user:pass@host:465`` (TLS from the start); ``SMTP_FROM`` is the sender. A notice to a
:class:`ChatAddress` of channel ``email`` (its ``chat_key`` is the address) becomes one message:
the outbox hands its files first, then its text (and buttons, written as links), and the text
is what sends the message with the files attached.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

from core.envelope import EMAIL_CHANNEL, ChatAddress, LinkButton, OutboundFile

log = logging.getLogger(__name__)

CHANNEL = EMAIL_CHANNEL
_DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> SmtpServer:
        """``smtp[s]://[user[:pass]@]host[:port]``; ValueError naming what is wrong."""
        parts = urlsplit(url)
        if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
            raise ValueError("SMTP_URL must look like smtp://user:pass@host:587 or smtps://…")
        return cls(
            host=parts.hostname,
            port=parts.port or _DEFAULT_PORTS[parts.scheme],
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=parts.scheme == "smtps",
        )


class SmtpMailer:
    def __init__(self, server: SmtpServer, sender: str, *, timeout: float = 30.0) -> None:
        self._server = server
        self._sender = sender
        self._timeout = timeout

    def sink_for(self, address: ChatAddress) -> _MailSink:
        return _MailSink(self, address.chat_key)

    async def send(self, to: str, text: str, files: Sequence[OutboundFile]) -> None:
        import aiosmtplib  # here: only a process that sends mail needs it

        message = EmailMessage()
        message["From"], message["To"] = self._sender, to
        message["Subject"] = text.splitlines()[0][:200] if text else "Switchboard"
        message.set_content(text)
        for file in files:
            data = file.path.read_bytes() if file.path is not None else file.data
            main, _, sub = (file.mime_type or "application/octet-stream").partition("/")
            message.add_attachment(data, maintype=main, subtype=sub, filename=file.file_name)
        server = self._server
        await aiosmtplib.send(
            message,
            hostname=server.host,
            port=server.port,
            username=server.username,
            password=server.password,
            use_tls=server.tls,
            # STARTTLS when the server offers it (aiosmtplib's default on plain SMTP).
            start_tls=None if not server.tls else False,
            timeout=self._timeout,
        )
        log.info("mailed %r to %s (%d attachment(s))", message["Subject"], to, len(files))


@dataclass(slots=True)
class _MailSink:
    """Collects a notice's files; its text sends the one message."""

    mailer: SmtpMailer
    to: str
    files: list[OutboundFile] = field(default_factory=list)

    async def send_file(self, file: OutboundFile) -> None:
        self.files.append(file)

    async def send_text(self, text: str) -> None:
        await self.mailer.send(self.to, text, self.files)

    async def send_buttons(self, text: str, buttons: Sequence[LinkButton]) -> None:
        links = "\n".join(f"{button.label}: {button.url}" for button in buttons)
        await self.send_text(f"{text}\n\n{links}" if links else text)
