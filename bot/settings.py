"""Process settings, read from the environment and a ``.env`` file.

Nothing here is module-level state: :func:`load_settings` builds a :class:`Settings` from whatever
mapping it is given, so tests and embedding code inject their own environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from core.errors import ConfigurationError
from core.identity import parse_identity

DEFAULT_MODELS = {
    "openai": "gpt-4o-mini",
    "openai_chat": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    database_url: str = "sqlite+aiosqlite:///./switchboard.db"
    media_dir: Path = Path("./media")
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_base_url: str | None = None
    #: Bearer token ``/metrics`` requires; the endpoint is open when unset.
    metrics_token: SecretStr | None = None

    telegram_bot_token: SecretStr | None = None
    telegram_api_base: str | None = None
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_secret: SecretStr | None = None
    #: How Telegram chats pay (DESIGN §3): Stripe Checkout links, or Telegram Stars invoices.
    telegram_payments: Literal["stripe", "stars"] = "stripe"
    #: What one Star is worth in ``BILLING_CURRENCY`` (revenue totals); above zero.
    stars_to_billing_rate: Decimal = Field(default=Decimal("0.013"), gt=0)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_base: str | None = None
    slack_command: str = "/sb"

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    default_provider: Literal["openai", "openai_chat", "anthropic"] | None = None
    default_model: str | None = None

    stripe_secret_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: str | None = None

    superadmins: str = ""
    billing_currency: str = "EUR"
    vat_rate: Decimal = Decimal("0.20")
    usd_to_billing_rate: Decimal = Decimal("1")
    #: UTC hour (0-23) at which ``switchboard run`` sends the day's new alerts to admins.
    alerts_hour: int = Field(default=8, ge=0, le=23)
    #: The invoice issuer, printed on every invoice.
    company_name: str = ""
    company_address: str = ""
    company_vat_id: str = ""
    #: ISO 3166 alpha-2 country of the issuer (``FR``): a buyer with a VAT ID of another EU
    #: country is invoiced without VAT (reverse charge).
    company_country: str = ""
    #: The issuer's legal registration (SIREN/RCS, HRB...), printed on every invoice.
    company_legal_id: str = ""
    #: Bank details (IBAN, BIC) printed on every invoice.
    company_bank: str = ""
    #: Payment terms printed on every invoice (late-payment interest, fixed indemnity...).
    invoice_payment_terms: str = ""
    invoice_due_days: int = Field(default=30, ge=0)
    #: Language of documents (and, as they gain translations, replies) for a tenant that chose
    #: none (``/tenant set SLUG --language``).
    default_language: Literal["en", "fr", "de"] = "en"
    #: ``smtp://user:pass@host:587`` (STARTTLS) or ``smtps://…:465``: invoices and receipts are
    #: e-mailed to tenants' addresses too.
    smtp_url: SecretStr | None = None
    smtp_from: str = ""

    # Operational knobs (not part of the public contract, documented in .env.example).
    provider_timeout_seconds: float = Field(default=120.0, gt=0)
    reservation_ttl_seconds: int = Field(default=600, gt=0)
    #: How long a call may wait for other calls' reservations to settle (default: the provider
    #: timeout, as long as one of them can take).
    reservation_wait_seconds: float | None = Field(default=None, ge=0)
    context_token_budget: int = Field(default=6000, gt=0)
    rate_limit_per_minute: int = Field(default=20, ge=0)
    recovery_grace_seconds: float = Field(default=10.0, ge=0)
    stripe_timeout_seconds: float = Field(default=30.0, gt=0)

    @field_validator("billing_currency")
    @classmethod
    def _upper_currency(cls, value: str) -> str:
        return value.upper()

    @field_validator("telegram_payments", mode="before")
    @classmethod
    def _payments_mode(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("company_country")
    @classmethod
    def _country_code(cls, value: str) -> str:
        code = value.strip().upper()
        if code and not (len(code) == 2 and code.isascii() and code.isalpha()):
            raise ValueError("an ISO 3166 alpha-2 country code such as FR or DE")
        return code

    @field_validator("company_address", "company_legal_id", "company_bank", "invoice_payment_terms")
    @classmethod
    def _line_breaks(cls, value: str) -> str:
        # One .env line holds several printed lines: "\n" written literally is a line break.
        return value.replace("\\n", "\n").strip()

    # -- derived views -------------------------------------------------------------------------

    @property
    def configured_providers(self) -> list[str]:
        """Providers with credentials or a base URL, in preference order."""
        found: list[str] = []
        if self.openai_api_key or self.openai_base_url:
            found.append("openai")
        if self.anthropic_api_key or self.anthropic_base_url:
            found.append("anthropic")
        return found

    @property
    def provider(self) -> str | None:
        if self.default_provider:
            return self.default_provider
        providers = self.configured_providers
        return providers[0] if providers else None

    @property
    def model(self) -> str | None:
        if self.default_model:
            return self.default_model
        provider = self.provider
        return DEFAULT_MODELS.get(provider) if provider else None

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None and (
            self.slack_signing_secret is not None or self.slack_app_token is not None
        )

    @property
    def payments_enabled(self) -> bool:
        """Payment links need the Stripe key and a public URL for Stripe to send buyers back to."""
        return self.stripe_secret_key is not None and bool(self.public_base_url)

    def superadmin_identities(self) -> list[tuple[str, str]]:
        """``SUPERADMINS=telegram:1,slack:T1/U1`` as ``[("telegram", "1"), ("slack", "T1/U1")]``."""
        result: list[tuple[str, str]] = []
        for raw in self.superadmins.split(","):
            item = raw.strip()
            if not item:
                continue
            try:
                result.append(parse_identity(item))
            except ValueError as exc:
                raise ConfigurationError([f"SUPERADMINS: {exc}"]) from None
        return result

    def service_problems(self) -> list[str]:
        """Why ``switchboard run`` must refuse to start: one line per missing piece."""
        problems: list[str] = []
        if not (self.telegram_enabled or self.slack_enabled):
            problems.append(
                "No channel configured: set TELEGRAM_BOT_TOKEN, or SLACK_BOT_TOKEN with "
                "SLACK_SIGNING_SECRET (or SLACK_APP_TOKEN)."
            )
        if self.slack_bot_token is not None and not self.slack_enabled:
            problems.append(
                "SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET nor SLACK_APP_TOKEN is."
            )
        if not self.configured_providers:
            problems.append(
                "No LLM provider configured: set OPENAI_API_KEY / OPENAI_BASE_URL or "
                "ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL."
            )
        if (
            self.telegram_mode == "webhook"
            and self.telegram_enabled
            and self.telegram_webhook_secret is None
        ):
            problems.append("TELEGRAM_MODE=webhook needs TELEGRAM_WEBHOOK_SECRET.")
        if self.telegram_payments == "stars" and not self.telegram_enabled:
            problems.append("TELEGRAM_PAYMENTS=stars needs TELEGRAM_BOT_TOKEN.")
        if self.stripe_secret_key is not None and not self.public_base_url:
            problems.append(
                "STRIPE_SECRET_KEY is set but PUBLIC_BASE_URL is not: Stripe Checkout needs it "
                "to send buyers back."
            )
        return problems

    def service_warnings(self) -> list[str]:
        """Settings that work but probably not as intended."""
        warnings: list[str] = []
        if self.stripe_secret_key is not None and self.stripe_webhook_secret is None:
            warnings.append(
                "STRIPE_SECRET_KEY is set without STRIPE_WEBHOOK_SECRET: payment links are "
                "made, but no payment is ever credited (POST /stripe/webhook is off)."
            )
        return warnings


def secret_value(value: SecretStr | None) -> str | None:
    """The plain text of an optional secret, for the one call that needs it."""
    return value.get_secret_value() if value is not None else None


class _ExplicitSettings(Settings):
    """Settings whose only source is the mapping given to the constructor."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | None = ".env"
) -> Settings:
    """Build settings from ``environ`` or, when it is None, the process environment + ``env_file``.

    An explicit mapping is the whole truth: the process environment is not consulted, which keeps
    tests and embedded uses isolated from the shell they run in.
    """
    try:
        if environ is None:
            return Settings(_env_file=env_file)  # type: ignore[call-arg]
        fields = Settings.model_fields
        values: dict[str, Any] = {
            k.lower(): v for k, v in environ.items() if k.lower() in fields and v != ""
        }
        return _ExplicitSettings(**values)
    except ValidationError as exc:
        # One line per bad variable, named as operators write it (ALERTS_HOUR, not alerts_hour).
        raise ConfigurationError(
            [
                f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}."
                for error in exc.errors()
            ]
        ) from None
