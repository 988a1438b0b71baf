"""Exact money: ISO 4217 currencies with the card gateway's rules, Decimal amounts."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from typing import Final

import attrs

from core.errors import ValidationError

# Stripe charges these in whole units: the smallest unit is the unit itself.
_ZERO_DECIMAL: Final = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
# Three decimals, but Stripe needs the last minor digit to be 0.
_THREE_DECIMAL: Final = frozenset("bhd jod kwd omr tnd".split())
# Two-decimal ISO 4217 currencies that card gateways charge in (funds and metals codes left out;
# iqd and lyd too: ISO gives them three decimals that Stripe does not take).
_TWO_DECIMAL: Final = frozenset(
    """aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bmd bnd bob brl bsd btn bwp byn
    bzd cad cdf chf cny cop crc cup cve czk dkk dop dzd egp ern etb eur fjd fkp gbp gel ghs gip
    gmd gtq gyd hkd hnl htg huf idr ils inr irr jmd kes kgs khr kpw kyd kzt lak lbp lkr lrd lsl
    mad mdl mkd mmk mnt mop mru mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen pgk php
    pkr pln qar ron rsd rub sar sbd scr sdg sek sgd shp sle sos srd ssp stn svc syp szl thb tjs
    tmt top try ttd twd tzs uah usd uyu uzs ves wst xcd yer zar zmw""".split()
)


@attrs.frozen
class Currency:
    """An ISO 4217 currency as a card gateway charges it.

    `exponent` is how many decimals an amount may have; the gateway's smallest unit is
    10**-`gateway_exponent` (they differ only for isk), and amounts in that unit must be a
    multiple of `gateway_step` (10 for the three-decimal currencies).
    """

    code: str
    exponent: int
    gateway_exponent: int
    gateway_step: int = 1

    def __str__(self) -> str:
        return self.code


def _build_currencies() -> dict[str, Currency]:
    table = {code: Currency(code, 2, 2) for code in _TWO_DECIMAL}
    table.update({code: Currency(code, 0, 0) for code in _ZERO_DECIMAL})
    table.update({code: Currency(code, 3, 3, gateway_step=10) for code in _THREE_DECIMAL})
    # Stripe: isk has no decimals, yet is sent as a two-decimal amount ending in 00.
    table["isk"] = Currency("isk", 0, 2)
    return table


# Plain ASCII decimals only: no exponents, underscores, other scripts' digits or signs but "-".
_PLAIN_DECIMAL: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?\Z")

# Far above any card charge, and small enough that Decimal arithmetic stays exact.
MAX_INTEGER_DIGITS: Final = 15

CURRENCIES: Final[dict[str, Currency]] = _build_currencies()


def currency(code: str, *, field: str = "currency") -> Currency:
    """The currency of an ISO 4217 code, in any case; `validation_error` for an unknown one."""
    found = CURRENCIES.get(code.strip().lower()) if isinstance(code, str) else None
    if found is None:
        raise ValidationError(f"{code!r} is not a supported ISO 4217 currency code.", field=field)
    return found


def parse_decimal(value: object, *, field: str) -> Decimal:
    """A Decimal from a JSON number (already a Decimal or an int) or a decimal string.

    Floats are refused: they cannot carry an amount exactly.
    """
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise ValidationError(
            f'{field} must be a decimal number or a string such as "150.00".', field=field
        )
    if isinstance(value, str) and not _PLAIN_DECIMAL.match(value.strip()):
        raise ValidationError(f'{field} is not a decimal number such as "150.00".', field=field)
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValidationError(f"{field} is not a decimal number.", field=field) from None
    if not number.is_finite():
        raise ValidationError(f"{field} must be a finite number.", field=field)
    if number and number.adjusted() >= MAX_INTEGER_DIGITS:
        raise ValidationError(
            f"{field} is too large: at most {MAX_INTEGER_DIGITS} digits before the decimal point.",
            field=field,
        )
    return number


@attrs.frozen(order=False)
class Money:
    """An exact amount of one currency, never more precise than the currency allows."""

    amount: Decimal
    currency: Currency

    def __attrs_post_init__(self) -> None:
        exponent = self.amount.as_tuple().exponent
        if exponent == -self.currency.exponent and self.currency.gateway_step == 1:
            return  # already exact to the currency's unit (amounts read back, sums): nothing to do
        if not isinstance(exponent, int):
            raise ValidationError("An amount must be a finite number.", field="amount")
        if -exponent > self.currency.exponent and self.amount != self.amount.quantize(
            _quantum(self.currency.exponent)
        ):
            raise ValidationError(
                f"{self.amount} has more decimals than {self.currency.code} allows "
                f"({self.currency.exponent}).",
                field="amount",
            )
        normalized = self.amount.quantize(_quantum(self.currency.exponent))
        object.__setattr__(self, "amount", normalized)
        if self.to_minor_units() % self.currency.gateway_step:
            raise ValidationError(
                f"{self} cannot be charged: {self.currency.code} amounts must end in 0 "
                "in the last decimal place.",
                field="amount",
            )

    @classmethod
    def of(cls, amount: object, currency_code: str | Currency, *, field: str = "amount") -> Money:
        """Parse an amount (Decimal, int or string) in a currency; errors name `field`."""
        cur = currency_code if isinstance(currency_code, Currency) else currency(currency_code)
        try:
            return cls(parse_decimal(amount, field=field), cur)
        except ValidationError as error:
            raise ValidationError(error.message, field=field) from None

    @classmethod
    def zero(cls, cur: Currency) -> Money:
        return _zero(cur)

    @classmethod
    def from_minor_units(cls, units: int, cur: Currency) -> Money:
        """The amount a gateway means by `units` of the currency's smallest unit; exact."""
        if abs(units) >= 10 ** (MAX_INTEGER_DIGITS + cur.gateway_exponent):
            raise ValidationError(f"{units} minor units is too large an amount.", field="amount")
        amount = Decimal(units).scaleb(-cur.gateway_exponent)
        return cls(amount, cur)

    def to_minor_units(self) -> int:
        """The amount in the gateway's smallest unit: 150.00 usd -> 15000, 1500 jpy -> 1500."""
        scaled = self.amount.scaleb(self.currency.gateway_exponent)
        return int(scaled)

    def __str__(self) -> str:
        """The amount with exactly the currency's decimals: "150.00", "1500", "1.250"."""
        return f"{self.amount:f}"

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(self.amount - other.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._same_currency(other)
        return self.amount >= other.amount

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    @property
    def is_zero(self) -> bool:
        return self.amount == 0


@functools.cache
def _quantum(exponent: int) -> Decimal:
    return Decimal(1).scaleb(-exponent)


@functools.cache
def _zero(cur: Currency) -> Money:
    # Every payment and invoice starts with zeros: one shared value per currency (it is frozen).
    return Money(Decimal(0), cur)
