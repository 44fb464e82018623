"""Conformance: real servers' recorded answers, replayed byte for byte through a real turn.

Each recording in ``tests/conformance/recordings`` is a streamed response body exactly as a real
server sent it (``<name>.sse``), found in a public repository's test cassettes, with its source
and the expected normalised usage in ``<name>.json`` (worked out by hand from the rules in
``assistants/providers/usage_report.py``; see the README there). The fake LLM server answers the
turn's provider call with those bytes, whatever was asked; the product must then deliver the
answer, keep it in the library and debit exactly the normalised usage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.text import storable
from storage.models import ContentItem, Tenant, UsageEvent
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer

RECORDINGS = Path(__file__).parent / "conformance" / "recordings"
PROVIDER_OF_API = {"responses": "openai", "chat": "openai_chat", "messages": "anthropic"}
GRANT = 10_000_000


@dataclass(frozen=True)
class Recording:
    name: str
    meta: dict[str, Any]

    @property
    def body(self) -> bytes:
        return (RECORDINGS / f"{self.name}.sse").read_bytes()


def _recordings() -> list[Recording]:
    return [
        Recording(path.stem, json.loads(path.read_text(encoding="utf-8")))
        for path in sorted(RECORDINGS.glob("*.json"))
    ]


ALL = _recordings()


def test_the_suite_covers_real_servers_widely() -> None:
    servers = {r.meta["server"] for r in ALL}
    apis = {r.meta["api"] for r in ALL}
    assert len(ALL) >= 20, [r.name for r in ALL]
    assert len(servers) >= 10, servers
    assert apis == set(PROVIDER_OF_API)


@pytest.mark.parametrize("recording", ALL, ids=[r.name for r in ALL])
def test_recording_names_its_source(recording: Recording) -> None:
    source = recording.meta["source"]
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", source["repo"])
    assert source["path"] and re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    readme = (RECORDINGS / "README.md").read_text(encoding="utf-8")
    assert f"`{recording.name}`" in readme and source["commit"] in readme
    assert recording.body, "the body is there"


@pytest.mark.parametrize("recording", ALL, ids=[r.name for r in ALL])
async def test_recorded_answer_is_delivered_saved_and_billed(
    make_app: AppFactory, llm: FakeLLMServer, recording: Recording
) -> None:
    meta = recording.meta
    app = await make_app(DEFAULT_PROVIDER=PROVIDER_OF_API[meta["api"]], DEFAULT_MODEL=meta["model"])
    await tenant_with_tokens(app, tokens=GRANT)
    await bind_console(app)
    llm.replay_next(recording.body)

    sink = await say(app, "Tell me something.")

    answer = storable(meta["text"])
    assert sink.texts[-1] == answer, "the answer reaches the chat"
    assert "".join(sink.deltas) == answer, "streamed as it came"
    async with app.deps.sessions() as session:
        [event] = (await session.execute(select(UsageEvent))).scalars().all()
        tenant = (await session.execute(select(Tenant))).scalar_one()
        library = (await session.execute(select(ContentItem.text))).scalars().all()
    assert library == [answer], "the answer is in the library"
    assert event.status == "settled"
    expected = meta["usage"]
    if expected is None:
        assert event.estimated and event.charged_tokens > 0
    else:
        assert not event.estimated
        assert (
            event.input_tokens,
            event.cached_input_tokens,
            event.cache_write_tokens,
            event.output_tokens,
            event.reasoning_tokens,
        ) == (
            expected["input"],
            expected["cached"],
            expected["cache_write"],
            expected["output"],
            expected["reasoning"],
        )
        assert event.charged_tokens == expected["input"] + expected["output"]
        assert event.usage_report is not None
    assert tenant.token_balance == GRANT - event.charged_tokens, "the debit is the usage"
    assert tenant.tokens_reserved == 0, "nothing stays reserved"
    assert (await admin(app, "ledger", "verify")).data["ok"] is True
