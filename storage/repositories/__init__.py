"""Repositories: typed queries over one :class:`AsyncSession`. They never commit; the caller owns
the unit of work."""
