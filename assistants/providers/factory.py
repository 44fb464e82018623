"""Builds one client per configured provider; the composition root in ``bot/`` calls this."""

from __future__ import annotations

from assistants.providers.deferred import DeferredClient
from assistants.types import ProviderClient


def build_provider_clients(
    *,
    openai_api_key: str | None,
    openai_base_url: str | None,
    anthropic_api_key: str | None,
    anthropic_base_url: str | None,
    timeout: float,
    max_retries: int = 0,
) -> dict[str, ProviderClient]:
    """Clients keyed by provider name, only for providers with a key or a base URL.

    An OpenAI key or base URL enables both ``openai`` (Responses) and ``openai_chat`` (Chat
    Completions) with the same credentials. The caller owns the clients and must ``aclose`` them.
    """
    # SDKs are imported only when configured, and then only when first needed (the service's
    # warm-up, a call): ``import anthropic`` alone takes seconds and ``import openai`` half of
    # one, which every CLI command and the service's start-up would pay otherwise. A missing key
    # becomes the placeholder in the client (SDKClient), so that this module imports nothing of
    # the clients' (providers.common alone pulls in httpx).
    clients: dict[str, ProviderClient] = {}
    if openai_api_key or openai_base_url:

        def responses() -> ProviderClient:
            from assistants.providers.openai_responses import OpenAIResponsesClient

            return OpenAIResponsesClient(
                api_key=openai_api_key,
                base_url=openai_base_url,
                timeout=timeout,
                max_retries=max_retries,
            )

        def chat() -> ProviderClient:
            from assistants.providers.openai_chat import OpenAIChatClient

            return OpenAIChatClient(
                api_key=openai_api_key,
                base_url=openai_base_url,
                timeout=timeout,
                max_retries=max_retries,
            )

        clients["openai"] = DeferredClient("openai", responses)
        clients["openai_chat"] = DeferredClient("openai_chat", chat)
    if anthropic_api_key or anthropic_base_url:

        def messages() -> ProviderClient:
            from assistants.providers.anthropic import AnthropicClient

            return AnthropicClient(
                api_key=anthropic_api_key,
                base_url=anthropic_base_url,
                timeout=timeout,
                max_retries=max_retries,
            )

        clients["anthropic"] = DeferredClient("anthropic", messages)
    return clients
