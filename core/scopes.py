"""Binding scopes: the key a chat is bound to a tenant under (``channel_bindings.scope_key``).

A Telegram private chat is bound by its user (``user:42``), a group by its chat (``chat:-100``),
a Slack workspace as a whole (``team:T0001``). Channels build the key from what arrives;
billing reads it back from a stored :class:`ChatAddress` to check that a chat is still the
tenant's before writing to it.
"""

from __future__ import annotations

from core.envelope import ChatAddress


def telegram_private_scope(user_id: int | str) -> str:
    return f"user:{user_id}"


def telegram_group_scope(chat_id: int | str) -> str:
    return f"chat:{chat_id}"


def slack_scope(team_id: str) -> str:
    return f"team:{team_id}"


def scope_of(address: ChatAddress) -> str | None:
    """The scope ``address`` is bound under, or None for a channel with no bindings to check.

    A Slack chat key is ``TEAM/CHANNEL`` (``T0001/C0001``) or, for an app DM, the member
    ``TEAM/USER``; either way the workspace decides.
    """
    if address.channel == "telegram":
        if address.is_private:
            return telegram_private_scope(address.chat_key)
        return telegram_group_scope(address.chat_key)
    if address.channel == "slack":
        team, _, _ = address.chat_key.partition("/")
        return slack_scope(team) if team else None
    return None
