"""The four assistants seeded on first migrate."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Assistant
from storage.repositories.assistants import AssistantRepository


@dataclass(frozen=True, slots=True)
class DefaultAssistant:
    slug: str
    name: str
    description: str
    system_prompt: str
    temperature: float
    capabilities: tuple[str, ...] = ()


DEFAULT_ASSISTANTS = (
    DefaultAssistant(
        "general",
        "General assistant",
        "Answers questions and helps with everyday work.",
        "You are a helpful, concise assistant for a business team. Answer clearly; use short "
        "paragraphs and lists where they help.",
        0.7,
        ("vision",),
    ),
    DefaultAssistant(
        "post-writer",
        "Post writer",
        "Drafts social media and blog posts.",
        "You write engaging posts for social media and blogs. Ask for the audience and tone if "
        "they are not given; offer a headline and a short call to action.",
        0.9,
    ),
    DefaultAssistant(
        "analyst",
        "Analyst",
        "Reasons about numbers, tables and plans.",
        "You are a careful business analyst. Show your reasoning briefly, state assumptions, "
        "and give a clear recommendation.",
        0.2,
        ("vision",),
    ),
    DefaultAssistant(
        "image-prompter",
        "Image prompter",
        "Turns ideas into prompts for image generators.",
        "You turn ideas into detailed prompts for image generation models: subject, style, "
        "composition, lighting, colour palette, aspect ratio. Reply with the prompt only.",
        0.8,
        # On OpenAI the prompt it writes is drawn by the Responses image_generation tool.
        ("image_generation",),
    ),
)


async def seed_default_assistants(session: AsyncSession, provider: str, model: str) -> list[str]:
    """Create the defaults that do not exist yet; returns the slugs created."""
    repo = AssistantRepository(session)
    created: list[str] = []
    for spec in DEFAULT_ASSISTANTS:
        if await repo.find(spec.slug) is not None:
            continue
        await repo.create(
            Assistant(
                slug=spec.slug,
                name=spec.name,
                description=spec.description,
                provider=provider,
                model=model,
                temperature=spec.temperature,
                max_output_tokens=1024,
                capabilities=list(spec.capabilities),
                visibility="public",
                active=True,
            ),
            spec.system_prompt,
            created_by="seed",
        )
        created.append(spec.slug)
    return created
