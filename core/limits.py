"""How large token numbers may get: one place for the bounds every layer checks.

Both databases store token counts as 64-bit integers. Past 2**63 - 1, PostgreSQL raises and
SQLite silently turns the value into a float, after which every ``SUM`` over the ledger fails.
These bounds keep every amount, and every sum of them, far inside that range.
"""

from __future__ import annotations

#: The most tokens a single amount or count may be: a grant, a quota, a pack, an output cap.
#: A hundred thousand times the largest pack sold, so no real use comes near it.
MAX_TOKENS = 10**12

#: A balance must stay within ±MAX_BALANCE tokens: a thousand maximal grants, and still more
#: than 9,000 times below 2**63, so that ledger sums and ``balance - reserved`` stay exact.
MAX_BALANCE = 10**15
