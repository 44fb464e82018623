"""Who receives a tenant's invoices and billing notices: its chats *now*, read at send time.

A group that asked for a payment link and was then moved to another tenant, or a platform
admin's own chat that asked for a link on the tenant's behalf (``/buy --tenant``), must not
receive the tenant's invoices.
"""

from __future__ import annotations

from bot.channels import build_channels
from bot.service import ServiceRunner
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.stripe_server import FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_payments import stripe_env

GROUP = -100777
MEMBER = 4242
OWNER = 5151
STAFF = 9090


async def test_invoices_go_to_the_tenants_chats_at_send_time(make_app: AppFactory) -> None:
    async with FakeStripeServer() as stripe, FakeTelegramServer() as fake:
        app = await make_app(
            **stripe_env(
                stripe,
                TELEGRAM_BOT_TOKEN=fake.token,
                TELEGRAM_API_BASE=fake.base_url,
                SUPERADMINS=f"telegram:{STAFF}",
            )
        )
        service = ServiceRunner(
            app, build_channels(app.settings, app.deps, app.pipeline, app.registry)
        )
        await service.start()
        stripe.webhook_urls.append(f"http://127.0.0.1:{service.port}/stripe/webhook")
        try:
            acme = await tenant_with_tokens(app, "acme", tokens=0)
            globex = await tenant_with_tokens(app, "globex", tokens=0)
            await fake.send_update(fake.private_message(OWNER, f"/start {acme}"))
            await fake.wait_for_bot_messages(OWNER)
            # A group of acme asks for a payment link; so does a platform admin, for acme.
            again = (await admin(app, "tenant", "invite", "acme")).data["invite_code"]
            await fake.send_update(fake.group_message(GROUP, MEMBER, f"/start {again}"))
            assert "linked to Acme" in (await fake.wait_for_bot_messages(GROUP))[-1].text
            await fake.send_update(fake.group_message(GROUP, MEMBER, "/buy starter"))
            await fake.wait_for_bot_messages(GROUP, 2)
            await fake.send_update(fake.private_message(STAFF, "/buy starter --tenant acme"))
            assert "Pay with the link" in (await fake.wait_for_bot_messages(STAFF))[-1].text
            # The group moves to globex (a platform admin sends globex's code there).
            await fake.send_update(fake.group_message(GROUP, STAFF, f"/start {globex}"))
            await fake.wait_for_bot_messages(GROUP, 3)

            number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data[
                "number"
            ]
            sent = await admin(app, "invoice", "send", number)

            assert "to 1 of 1 recipient" in sent.text, sent.text
            await fake.wait_for(lambda: bool(fake.calls_to("sendDocument", chat_id=OWNER)))
            assert fake.calls_to("sendDocument", chat_id=GROUP) == []
            assert fake.calls_to("sendDocument", chat_id=STAFF) == []

            # The links are paid now: the admin who asked is told; the moved group is not
            # (it would learn acme's balance).
            group_link, staff_link = [
                sid for sid, s in stripe.sessions.items() if s.data["metadata"].get("pack")
            ]
            told = len(fake.bot_texts(GROUP))
            assert await stripe.pay(staff_link) == [200]
            await fake.wait_for(lambda: "Payment received" in fake.bot_texts(STAFF)[-1])
            assert await stripe.pay(group_link) == [200]
            assert await admin(app, "ledger", "verify")
            assert len(fake.bot_texts(GROUP)) == told
            # The receipts reach acme's chat and the admin who paid, never the moved group.
            await fake.wait_for(lambda: len(fake.calls_to("sendDocument", chat_id=OWNER)) == 3)
            assert len(fake.calls_to("sendDocument", chat_id=STAFF)) == 1
            assert fake.calls_to("sendDocument", chat_id=GROUP) == []
        finally:
            await service.stop()
