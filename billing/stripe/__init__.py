"""Stripe: Checkout links, the webhook and what each of its events does."""
