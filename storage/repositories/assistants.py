from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import NotFoundError
from storage.models import Assistant, PromptVersion, TenantAssistant


@dataclass(frozen=True, slots=True)
class ResolvedAssistant:
    """An assistant as one tenant sees it: its name and prompt with the tenant's overrides."""

    assistant: Assistant
    display_name: str
    system_prompt: str

    @property
    def slug(self) -> str:
        return self.assistant.slug


class AssistantRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def find(self, slug: str) -> Assistant | None:
        query = select(Assistant).where(Assistant.slug == slug)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def get(self, slug: str) -> Assistant:
        assistant = await self.find(slug)
        if assistant is None:
            raise NotFoundError("assistant", slug)
        return assistant

    async def all(self) -> list[Assistant]:
        return list(
            (await self.session.execute(select(Assistant).order_by(Assistant.id))).scalars()
        )

    async def create(self, assistant: Assistant, system_prompt: str, created_by: str) -> Assistant:
        assistant.prompt_version = 1
        self.session.add(assistant)
        await self.session.flush()
        self.session.add(
            PromptVersion(
                assistant_id=assistant.id,
                version=1,
                system_prompt=system_prompt,
                note="initial",
                created_by=created_by,
            )
        )
        await self.session.flush()
        return assistant

    async def prompt(self, assistant: Assistant, version: int | None = None) -> PromptVersion:
        wanted = assistant.prompt_version if version is None else version
        query = select(PromptVersion).where(
            PromptVersion.assistant_id == assistant.id, PromptVersion.version == wanted
        )
        found = (await self.session.execute(query)).scalar_one_or_none()
        if found is None:
            raise NotFoundError("prompt version", f"{assistant.slug} v{wanted}")
        return found

    async def versions(self, assistant: Assistant) -> list[PromptVersion]:
        query = (
            select(PromptVersion)
            .where(PromptVersion.assistant_id == assistant.id)
            .order_by(PromptVersion.version)
        )
        return list((await self.session.execute(query)).scalars())

    async def set_prompt(
        self, assistant: Assistant, system_prompt: str, note: str, created_by: str
    ) -> PromptVersion:
        """Every change is a new version; the old ones stay for rollback."""
        latest = max(v.version for v in await self.versions(assistant))
        version = PromptVersion(
            assistant_id=assistant.id,
            version=latest + 1,
            system_prompt=system_prompt,
            note=note,
            created_by=created_by,
        )
        self.session.add(version)
        assistant.prompt_version = version.version
        await self.session.flush()
        return version

    async def rollback(self, assistant: Assistant, version: int, created_by: str) -> PromptVersion:
        old = await self.prompt(assistant, version)
        return await self.set_prompt(
            assistant, old.system_prompt, f"rollback to v{version}", created_by
        )

    async def override(self, tenant_id: int, assistant_id: int) -> TenantAssistant | None:
        query = select(TenantAssistant).where(
            TenantAssistant.tenant_id == tenant_id, TenantAssistant.assistant_id == assistant_id
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def available_to(self, tenant_id: int) -> list[ResolvedAssistant]:
        """Active assistants the tenant may use, with its overrides applied, in id order."""
        rows = await self.session.execute(
            select(Assistant, TenantAssistant, PromptVersion)
            .join(
                PromptVersion,
                (PromptVersion.assistant_id == Assistant.id)
                & (PromptVersion.version == Assistant.prompt_version),
            )
            .outerjoin(
                TenantAssistant,
                (TenantAssistant.assistant_id == Assistant.id)
                & (TenantAssistant.tenant_id == tenant_id),
            )
            .where(Assistant.active.is_(True))
            .order_by(Assistant.id)
        )
        resolved: list[ResolvedAssistant] = []
        for assistant, override, prompt in rows:
            if override is not None and not override.enabled:
                continue
            if assistant.visibility == "private" and override is None:
                continue
            name = override.custom_name if override and override.custom_name else assistant.name
            system = (
                override.system_prompt_override
                if override and override.system_prompt_override
                else prompt.system_prompt
            )
            resolved.append(ResolvedAssistant(assistant, name, system))
        return resolved

    async def resolve(self, tenant_id: int, slug: str) -> ResolvedAssistant:
        for candidate in await self.available_to(tenant_id):
            if candidate.slug == slug:
                return candidate
        raise NotFoundError("assistant", slug)
