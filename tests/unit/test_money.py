"""core.money: exact amounts, ISO 4217 exponents with the gateway's rules, no rounding ever."""

from __future__ import annotations

import operator
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationError
from core.money import CURRENCIES, Currency, Money, currency, parse_decimal

# The contract's lists, written out so that the table in core.money can be checked against them.
ZERO_DECIMAL = "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
THREE_DECIMAL = "bhd jod kwd omr tnd".split()
MAX_INTEGER_DIGITS = 15

ALL_CODES = sorted(CURRENCIES)
currencies = st.sampled_from(ALL_CODES).map(lambda code: CURRENCIES[code])


def assert_refused(error: pytest.ExceptionInfo[ValidationError], field: str) -> None:
    assert error.value.code == "validation_error"
    assert error.value.details["field"] == field


def minor_step(cur: Currency) -> int:
    """The smallest chargeable increment in the gateway's unit (10 for kwd, 100 for isk)."""
    return cur.gateway_step * int(10 ** (cur.gateway_exponent - cur.exponent))


@st.composite
def chargeable_amounts(draw: st.DrawFn) -> tuple[Currency, Decimal, int]:
    """A currency, an amount with at most its exponent's decimals, and its minor units."""
    cur = draw(currencies)
    decimals = draw(st.integers(0, cur.exponent))
    units = draw(st.integers(0, 10 ** (MAX_INTEGER_DIGITS + decimals) - 1))
    if cur.gateway_step != 1 and decimals == cur.exponent:
        units -= units % cur.gateway_step
    amount = Decimal(units).scaleb(-decimals)
    return cur, amount, units * 10 ** (cur.gateway_exponent - decimals)


@st.composite
def over_precise_amounts(draw: st.DrawFn) -> tuple[Currency, Decimal]:
    """A currency and an amount whose last non-zero digit lies beyond the currency's exponent."""
    cur = draw(currencies)
    decimals = cur.exponent + draw(st.integers(1, 6))
    units = draw(st.integers(1, 10 ** (MAX_INTEGER_DIGITS + decimals) - 1))
    if units % 10 == 0:
        units += 1
    return cur, Decimal(units).scaleb(-decimals)


# --- the contract's examples -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "code", "minor", "text"),
    [
        (Decimal("150.00"), "usd", 15000, "150.00"),
        ("150.00", "usd", 15000, "150.00"),
        (150, "usd", 15000, "150.00"),
        (Decimal("150.10"), "usd", 15010, "150.10"),
        (Decimal("1500"), "jpy", 1500, "1500"),
        (1500, "jpy", 1500, "1500"),
        (Decimal("1.250"), "kwd", 1250, "1.250"),
        ("1.25", "kwd", 1250, "1.250"),
        (5, "isk", 500, "5"),
        ("0.01", "usd", 1, "0.01"),
    ],
)
def test_contract_examples_convert_exactly_to_minor_units(
    amount: object, code: str, minor: int, text: str
) -> None:
    money = Money.of(amount, code)
    assert money.to_minor_units() == minor
    assert str(money) == text
    assert Money.from_minor_units(minor, CURRENCIES[code]) == money


@pytest.mark.parametrize(
    ("amount", "code"),
    [
        ("1.255", "kwd"),
        ("0.001", "bhd"),
        ("5.5", "isk"),
        ("1500.5", "jpy"),
        ("150.001", "usd"),
        ("150.005", "usd"),
        ("0.009", "usd"),
        ("1.2501", "kwd"),
    ],
)
def test_contract_examples_of_refused_amounts(amount: str, code: str) -> None:
    with pytest.raises(ValidationError) as error:
        Money.of(amount, code)
    assert_refused(error, "amount")


def test_three_decimal_currency_minor_units_not_ending_in_zero_are_refused() -> None:
    with pytest.raises(ValidationError) as error:
        Money.from_minor_units(1255, CURRENCIES["kwd"])
    assert_refused(error, "amount")


def test_isk_minor_units_with_a_fraction_are_refused() -> None:
    assert Money.from_minor_units(500, CURRENCIES["isk"]) == Money.of(5, "isk")
    with pytest.raises(ValidationError) as error:
        Money.from_minor_units(550, CURRENCIES["isk"])
    assert_refused(error, "amount")


def test_currency_table_follows_the_gateways_exponents() -> None:
    for code in ZERO_DECIMAL:
        assert CURRENCIES[code].exponent == 0, code
        assert CURRENCIES[code].gateway_exponent == 0, code
    for code in THREE_DECIMAL:
        assert CURRENCIES[code].exponent == 3, code
        assert CURRENCIES[code].gateway_step == 10, code
    for code in ("usd", "eur", "gbp", "huf", "twd"):
        assert CURRENCIES[code].exponent == 2, code
    assert CURRENCIES["isk"].exponent == 0
    assert CURRENCIES["isk"].gateway_exponent == 2
    assert all(code == code.lower() and len(code) == 3 for code in CURRENCIES)


# --- every currency ----------------------------------------------------------------------------


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_currency_round_trips_its_smallest_and_largest_amounts(code: str) -> None:
    cur = CURRENCIES[code]
    step = minor_step(cur)
    largest = (10 ** (MAX_INTEGER_DIGITS + cur.gateway_exponent) - 1) // step * step
    for units in (step, largest):
        money = Money.from_minor_units(units, cur)
        assert money.to_minor_units() == units
        assert Money.of(str(money), code.upper()) == money
        decimals = len(str(money).partition(".")[2])
        assert decimals == cur.exponent


@pytest.mark.parametrize("code", ALL_CODES)
def test_every_currency_refuses_one_decimal_more_than_its_exponent(code: str) -> None:
    cur = CURRENCIES[code]
    amount = Decimal(11).scaleb(-(cur.exponent + 1))
    with pytest.raises(ValidationError) as error:
        Money.of(amount, code)
    assert_refused(error, "amount")


@given(chargeable_amounts())
def test_amount_within_the_exponent_round_trips_exactly(
    case: tuple[Currency, Decimal, int],
) -> None:
    cur, amount, minor = case
    money = Money.of(amount, cur)
    assert money.amount == amount
    assert money.to_minor_units() == minor
    assert Money.from_minor_units(minor, cur) == money
    assert Money.from_minor_units(money.to_minor_units(), cur).amount == amount
    text = str(money)
    assert Decimal(text) == amount
    assert len(text.partition(".")[2]) == cur.exponent
    assert Money.of(text, cur.code) == money


@given(over_precise_amounts())
def test_amount_with_excess_precision_is_refused_not_rounded(
    case: tuple[Currency, Decimal],
) -> None:
    cur, amount = case
    for value in (amount, f"{amount:f}"):
        with pytest.raises(ValidationError) as error:
            Money.of(value, cur.code)
        assert_refused(error, "amount")
    with pytest.raises(ValidationError) as error:
        Money(amount, cur)
    assert_refused(error, "amount")


@given(over_precise_amounts())
def test_excess_precision_error_names_the_callers_field(case: tuple[Currency, Decimal]) -> None:
    cur, amount = case
    with pytest.raises(ValidationError) as error:
        Money.of(amount, cur, field="amount_due")
    assert_refused(error, "amount_due")


@given(st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=0, max_value=10**12))
def test_decimal_strings_and_numbers_parse_exactly(amount: Decimal) -> None:
    assert parse_decimal(amount, field="amount") == amount
    parsed = parse_decimal(f"{amount:f}", field="amount")
    assert parsed == amount
    assert parsed.as_tuple() == amount.as_tuple()


# --- currency codes ----------------------------------------------------------------------------


@given(st.sampled_from(ALL_CODES), st.lists(st.booleans(), min_size=3, max_size=3))
def test_currency_codes_are_case_insensitive(code: str, upper: list[bool]) -> None:
    spelled = "".join(c.upper() if up else c for c, up in zip(code, upper, strict=True))
    assert currency(spelled) is CURRENCIES[code]
    money = Money.of("1", spelled)
    assert money.currency.code == code
    assert money == Money.of("1", code)


@pytest.mark.parametrize("code", ["xyz", "us", "usdd", "", "   ", "eur1", "u$d", "btc"])
def test_unknown_currency_code_is_a_validation_error_naming_currency(code: str) -> None:
    with pytest.raises(ValidationError) as error:
        currency(code)
    assert_refused(error, "currency")
    with pytest.raises(ValidationError) as error:
        Money.of("1.00", code)
    assert_refused(error, "currency")


@given(st.text(max_size=6).filter(lambda s: s.strip().lower() not in CURRENCIES))
def test_any_other_text_is_not_a_currency(code: str) -> None:
    with pytest.raises(ValidationError) as error:
        currency(code)
    assert_refused(error, "currency")


@pytest.mark.parametrize("code", [None, 840, 1.5, b"usd", ["usd"]])
def test_non_string_currency_code_is_refused(code: object) -> None:
    with pytest.raises(ValidationError) as error:
        currency(code)  # type: ignore[arg-type]
    assert_refused(error, "currency")


def test_currency_error_names_the_callers_field() -> None:
    with pytest.raises(ValidationError) as error:
        currency("zzz", field="invoice.currency")
    assert_refused(error, "invoice.currency")


# --- refused inputs ----------------------------------------------------------------------------


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_floats_are_refused(value: float) -> None:
    with pytest.raises(ValidationError) as error:
        parse_decimal(value, field="amount")
    assert_refused(error, "amount")
    with pytest.raises(ValidationError) as error:
        Money.of(value, "usd")
    assert_refused(error, "amount")


@pytest.mark.parametrize("value", [True, False])
def test_bools_are_refused(value: bool) -> None:
    with pytest.raises(ValidationError) as error:
        parse_decimal(value, field="amount")
    assert_refused(error, "amount")
    with pytest.raises(ValidationError) as error:
        Money.of(value, "jpy")
    assert_refused(error, "amount")


@pytest.mark.parametrize(
    "value",
    [
        Decimal("NaN"),
        Decimal("-NaN"),
        Decimal("sNaN"),
        Decimal("Infinity"),
        Decimal("-Infinity"),
        "NaN",
        "nan",
        "sNaN",
        "Infinity",
        "inf",
        "-Infinity",
    ],
)
def test_nan_and_infinity_are_refused(value: object) -> None:
    with pytest.raises(ValidationError) as error:
        parse_decimal(value, field="amount")
    assert_refused(error, "amount")
    with pytest.raises(ValidationError) as error:
        Money.of(value, "usd")
    assert_refused(error, "amount")


@pytest.mark.parametrize(
    "value", [None, [], {}, "", "  ", "abc", "1,50", "1.5.0", "0x10", "150 usd", object()]
)
def test_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(ValidationError) as error:
        parse_decimal(value, field="amount")
    assert_refused(error, "amount")


@pytest.mark.parametrize(
    "value",
    [
        10**MAX_INTEGER_DIGITS,
        -(10**MAX_INTEGER_DIGITS),
        "1000000000000000",
        "1000000000000000.00",
        Decimal("1E+15"),
        "1e15",
        Decimal("9" * 30),
        10**40,
    ],
)
def test_huge_amounts_are_refused(value: object) -> None:
    with pytest.raises(ValidationError) as error:
        parse_decimal(value, field="amount")
    assert_refused(error, "amount")
    with pytest.raises(ValidationError) as error:
        Money.of(value, "usd")
    assert_refused(error, "amount")


def test_fifteen_integer_digits_are_accepted() -> None:
    largest = "9" * MAX_INTEGER_DIGITS
    assert parse_decimal(largest, field="amount") == Decimal(largest)
    money = Money.of(f"{largest}.99", "usd")
    assert money.to_minor_units() == int(largest + "99")
    assert Money.of(largest, "jpy").to_minor_units() == int(largest)


@given(st.integers(min_value=MAX_INTEGER_DIGITS, max_value=60), st.integers(1, 9))
def test_amounts_beyond_fifteen_integer_digits_are_refused(digits: int, lead: int) -> None:
    value = Decimal(lead).scaleb(digits)
    with pytest.raises(ValidationError) as error:
        parse_decimal(value, field="amount_due")
    assert_refused(error, "amount_due")


# --- arithmetic --------------------------------------------------------------------------------


def test_same_currency_arithmetic_is_exact() -> None:
    a, b = Money.of("0.10", "usd"), Money.of("0.20", "usd")
    assert a + b == Money.of("0.30", "usd")
    assert b - a == Money.of("0.10", "usd")
    assert a < b
    assert a <= b
    assert b > a
    assert b >= a
    assert (a + b).to_minor_units() == 30


@pytest.mark.parametrize(
    "op", [operator.add, operator.sub, operator.lt, operator.le, operator.gt, operator.ge]
)
@pytest.mark.parametrize(("left", "right"), [("usd", "eur"), ("jpy", "krw"), ("kwd", "bhd")])
def test_money_arithmetic_refuses_mixing_currencies(
    op: Callable[[Money, Money], object], left: str, right: str
) -> None:
    with pytest.raises(ValueError, match="cannot combine"):
        op(Money.of(1, left), Money.of(1, right))


def test_money_of_different_currencies_is_never_equal() -> None:
    assert Money.of(1, "usd") != Money.of(1, "eur")
    assert Money.of(1, "usd") == Money.of("1.00", "USD")
