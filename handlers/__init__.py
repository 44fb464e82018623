"""Channel-agnostic pipeline plus the thin channel adapters (console, telegram, slack)."""
