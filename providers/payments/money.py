"""Currency minor units, one table for every payments provider.

Amounts cross the payments interface as integers in the currency's minor unit. Which unit
that is must be the same for every provider, or a plan priced once would cost a hundred times
more through one processor than through another. The table follows Stripe's (the amounts of a
plan are sent to Stripe unchanged, so Stripe's reading is the one the whole interface uses):
ISO 4217's exponents, except where Stripe counts whole units (MGA, ISK, UGX are
zero-decimal at Stripe although ISO 4217 gives them minor units). Crypto codes count in their
smallest unit (`btc` in satoshis; `sats` is already satoshis).
"""

from __future__ import annotations

ZERO_DECIMAL = frozenset(
    {"bif", "clp", "djf", "gnf", "isk", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx"}
    | {"vnd", "vuv", "xaf", "xof", "xpf"}
)
THREE_DECIMAL = frozenset({"bhd", "iqd", "jod", "kwd", "lyd", "omr", "tnd"})
CRYPTO_DECIMALS = {"btc": 8, "sats": 0}


def minor_unit_exponent(currency: str) -> int:
    """How many decimal places the currency's minor unit has (`eur`: 2, `jpy`: 0, `kwd`: 3,
    `btc`: 8, counting in satoshis)."""
    code = currency.lower()
    if code in CRYPTO_DECIMALS:
        return CRYPTO_DECIMALS[code]
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def format_amount(amount: int, currency: str) -> str:
    """An amount in minor units as people write it: `format_amount(1250, "eur")` is
    `12.50 EUR`, `format_amount(500, "jpy")` is `500 JPY`."""
    code = currency.upper()
    places = minor_unit_exponent(currency)
    if places == 0:
        return f"{amount} {code}"
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**places)
    return f"{sign}{whole}.{fraction:0{places}d} {code}"
