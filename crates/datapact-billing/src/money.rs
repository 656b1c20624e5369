//! Money: currencies, amounts in integer minor units ([`Money`]), unit rates in micro-units ([`Rate`]), exact
//! decimal parsing and formatting, and the one rounding rule ([`round_half_even`]). No floats anywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Micro-units per currency unit: a [`Rate`] of `"0.005"` is 5,000 micro-units.
pub const MICROS_PER_UNIT: i64 = 1_000_000;

/// Decimals a [`Rate`] may have (micro-units).
pub const RATE_DECIMALS: u32 = 6;

/// A currency datapact bills in, with its minor-unit exponent (ISO 4217).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Currency {
    /// US dollar, 2 decimals.
    Usd,
    /// Euro, 2 decimals.
    Eur,
    /// Pound sterling, 2 decimals.
    Gbp,
    /// Swiss franc, 2 decimals.
    Chf,
    /// Canadian dollar, 2 decimals.
    Cad,
    /// Australian dollar, 2 decimals.
    Aud,
    /// Japanese yen, no minor unit.
    Jpy,
    /// Kuwaiti dinar, 3 decimals.
    Kwd,
}

impl Currency {
    /// Every currency, in declaration order.
    pub const ALL: [Currency; 8] = [
        Currency::Usd,
        Currency::Eur,
        Currency::Gbp,
        Currency::Chf,
        Currency::Cad,
        Currency::Aud,
        Currency::Jpy,
        Currency::Kwd,
    ];

    /// The ISO 4217 code: `"USD"`.
    pub fn code(self) -> &'static str {
        match self {
            Currency::Usd => "USD",
            Currency::Eur => "EUR",
            Currency::Gbp => "GBP",
            Currency::Chf => "CHF",
            Currency::Cad => "CAD",
            Currency::Aud => "AUD",
            Currency::Jpy => "JPY",
            Currency::Kwd => "KWD",
        }
    }

    /// Decimals of the minor unit: 2 for USD (cents), 0 for JPY, 3 for KWD.
    pub fn exponent(self) -> u32 {
        match self {
            Currency::Jpy => 0,
            Currency::Kwd => 3,
            _ => 2,
        }
    }

    /// Minor units per unit: 100 for USD, 1 for JPY.
    pub fn minor_per_unit(self) -> i64 {
        10i64.pow(self.exponent())
    }

    /// Reads an ISO 4217 code (upper case, as written in the terms file).
    pub fn parse(code: &str) -> Option<Currency> {
        Currency::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The codes, comma-separated, for error messages.
    pub fn codes() -> String {
        Currency::ALL.map(Currency::code).join(", ")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Currency {
    type Err = String;

    fn from_str(code: &str) -> Result<Currency, String> {
        Currency::parse(code).ok_or_else(|| format!("unknown currency {code:?}; currencies are {}", Currency::codes()))
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a decimal amount was refused. Messages quote the text and say what to write instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not digits with an optional single point (`"1e3"`, `"1,000"`, `" 5"`, `".5"`, `"5."`, `"+5"`, `""`).
    #[error("{0:?} is not a decimal amount: write digits with an optional point, such as \"200.00\"")]
    Malformed(String),
    /// More significant decimals than allowed (trailing zeros do not count: `"1.50000"` is 1.5).
    #[error("{text:?} has more than {decimals} decimal(s): {what} cannot be more precise than that")]
    TooPrecise {
        /// The text.
        text: String,
        /// The decimals allowed.
        decimals: u32,
        /// What is being parsed ("an amount in USD", "a rate").
        what: String,
    },
    /// A minus sign where only amounts of zero or more are allowed.
    #[error("{0:?} is negative: write an amount of zero or more")]
    Negative(String),
    /// Beyond what 64-bit minor (or micro) units hold.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses a decimal string exactly into an integer count of `10^-decimals` units: `("12.5", 2)` → 1250.
///
/// Grammar: an optional `-` (only when `signed`), one or more ASCII digits, optionally a point followed by one or
/// more digits. No spaces, signs `+`, exponents or separators. Trailing zeros beyond `decimals` are accepted
/// (`"1.500"` with 2 decimals is 150); a nonzero digit beyond `decimals` is [`AmountError::TooPrecise`].
pub fn parse_decimal(text: &str, decimals: u32, signed: bool, what: &str) -> Result<i64, AmountError> {
    let malformed = || AmountError::Malformed(text.to_owned());
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, frac) = match body.split_once('.') {
        Some((whole, frac)) => (whole, Some(frac)),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || frac.is_some_and(|f| !digits(f)) {
        return Err(malformed());
    }
    let significant = frac.unwrap_or("").trim_end_matches('0');
    if significant.len() > decimals as usize {
        return Err(AmountError::TooPrecise { text: text.to_owned(), decimals, what: what.to_owned() });
    }
    let whole = whole.trim_start_matches('0');
    if whole.len() > 20 {
        return Err(AmountError::TooLarge(text.to_owned()));
    }
    let whole: i128 = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| malformed())? };
    let frac: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse::<i128>().map_err(|_| malformed())? * pow10(decimals - significant.len() as u32)
    };
    let magnitude = whole * pow10(decimals) + frac;
    if negative && magnitude != 0 && !signed {
        return Err(AmountError::Negative(text.to_owned()));
    }
    let value = if negative { -magnitude } else { magnitude };
    i64::try_from(value).map_err(|_| AmountError::TooLarge(text.to_owned()))
}

/// Writes `value × 10^-decimals` with exactly `decimals` decimals: `(1250, 2)` → `"12.50"`, `(-5, 2)` → `"-0.05"`.
pub fn format_decimal(value: i64, decimals: u32) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    if decimals == 0 {
        return format!("{sign}{magnitude}");
    }
    let scale = 10u64.pow(decimals);
    format!("{sign}{}.{:0width$}", magnitude / scale, magnitude % scale, width = decimals as usize)
}

/// A balance kept in micro-units written like a rate: at least the currency's decimals, at most six, trailing zeros
/// beyond the currency's trimmed, and the code: `(Usd, 12_345_000)` → `"12.345 USD"`, `(Usd, 500_000)` → `"0.50 USD"`.
pub fn format_micro(currency: Currency, micro: i64) -> String {
    let full = format_decimal(micro, RATE_DECIMALS);
    let (whole, frac) = full.split_once('.').unwrap_or((&full, ""));
    let keep = currency.exponent() as usize;
    let trimmed = frac.trim_end_matches('0');
    let frac = if trimmed.len() >= keep { trimmed.to_owned() } else { format!("{trimmed:0<keep$}") };
    if frac.is_empty() { format!("{whole} {currency}") } else { format!("{whole}.{frac} {currency}") }
}

/// `10^n` as an `i128` (n ≤ 38).
pub(crate) fn pow10(n: u32) -> i128 {
    10i128.pow(n)
}

/// Rounds `numerator / denominator` to the nearest integer, ties to the even neighbour (banker's rounding).
/// `denominator` must be positive.
///
/// ```
/// use datapact_billing::round_half_even;
/// assert_eq!(round_half_even(5, 2), 2); // 2.5 → 2
/// assert_eq!(round_half_even(7, 2), 4); // 3.5 → 4
/// assert_eq!(round_half_even(-5, 2), -2); // -2.5 → -2
/// assert_eq!(round_half_even(280_000, 31), 9_032); // 9,032.258… → 9,032
/// ```
pub fn round_half_even(numerator: i128, denominator: i128) -> i128 {
    assert!(denominator > 0, "round_half_even needs a positive denominator");
    let quotient = numerator.div_euclid(denominator);
    let twice_remainder = 2 * numerator.rem_euclid(denominator);
    match twice_remainder.cmp(&denominator) {
        std::cmp::Ordering::Less => quotient,
        std::cmp::Ordering::Greater => quotient + 1,
        std::cmp::Ordering::Equal if quotient % 2 == 0 => quotient,
        std::cmp::Ordering::Equal => quotient + 1,
    }
}

/// An exact amount in minor units as a fraction, before rounding: what a line would cost with infinite precision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exact {
    /// The numerator (minor units × `denominator`).
    pub numerator: i128,
    /// The denominator, positive.
    pub denominator: i128,
}

impl Exact {
    /// Rounded once, half-even, to whole minor units; `None` if the result does not fit an `i64`.
    pub fn round(self) -> Option<i64> {
        i64::try_from(round_half_even(self.numerator, self.denominator)).ok()
    }
}

/// An amount of money: an integer number of the currency's minor units (cents for USD, yen for JPY).
///
/// ```
/// use datapact_billing::{Currency, Money};
/// let fee = Money::parse(Currency::Usd, "200.00").unwrap();
/// assert_eq!(fee.minor, 20_000);
/// assert_eq!(fee.to_string(), "200.00 USD");
/// assert_eq!(Money::parse(Currency::Jpy, "38000").unwrap().amount(), "38000");
/// assert!(Money::parse(Currency::Usd, "0.001").is_err()); // finer than a cent
/// assert!(Money::parse(Currency::Usd, "-1.00").is_err()); // use parse_signed for adjustments
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The currency.
    pub currency: Currency,
    /// Minor units (may be negative only where a caller allows it, e.g. credit notes).
    pub minor: i64,
}

impl Money {
    /// `minor` minor units of `currency`.
    pub const fn new(currency: Currency, minor: i64) -> Money {
        Money { currency, minor }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Money {
        Money { currency, minor: 0 }
    }

    /// Parses an amount of zero or more with at most the currency's decimals (`"200.00"`, `"200"`, `"0.5"`).
    pub fn parse(currency: Currency, text: &str) -> Result<Money, AmountError> {
        let minor = parse_decimal(text, currency.exponent(), false, &format!("an amount in {currency}"))?;
        Ok(Money { currency, minor })
    }

    /// Like [`Money::parse`], but a leading `-` is allowed.
    pub fn parse_signed(currency: Currency, text: &str) -> Result<Money, AmountError> {
        let minor = parse_decimal(text, currency.exponent(), true, &format!("an amount in {currency}"))?;
        Ok(Money { currency, minor })
    }

    /// `units` whole units (`from_units(Usd, 200)` is 200.00 USD); `None` on overflow.
    pub fn from_units(currency: Currency, units: i64) -> Option<Money> {
        units.checked_mul(currency.minor_per_unit()).map(|minor| Money { currency, minor })
    }

    /// The amount with exactly the currency's decimals and no code: `"200.00"`, `"38000"` (JPY).
    pub fn amount(&self) -> String {
        format_decimal(self.minor, self.currency.exponent())
    }

    /// The amount in micro-units of the currency (the unit rates are kept in), as a prepaid balance is:
    /// `1.50 USD` → 1,500,000; `None` on overflow.
    pub fn micro(&self) -> Option<i64> {
        i64::try_from(i128::from(self.minor) * pow10(RATE_DECIMALS - self.currency.exponent())).ok()
    }

    /// The sum, or `None` if the currencies differ or it overflows.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.minor.checked_add(other.minor))
            .flatten()
            .map(|minor| Money { currency: self.currency, minor })
    }

    /// The difference, or `None` if the currencies differ or it overflows.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.minor.checked_sub(other.minor))
            .flatten()
            .map(|minor| Money { currency: self.currency, minor })
    }

    /// Whether the amount is below zero.
    pub fn is_negative(&self) -> bool {
        self.minor < 0
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount(), self.currency)
    }
}

/// A unit rate: a price per unit (per record, per 1,000 records) in micro-units of a currency, zero or more. Rates
/// carry no currency (a price book does) and are exact to a millionth of the unit whatever the currency's minor
/// unit: `"0.005"` USD per record is 5,000 micro-dollars, half a cent.
///
/// ```
/// use datapact_billing::{Currency, Rate};
/// let per_record = Rate::parse("0.005").unwrap();
/// assert_eq!(per_record.micro(), 5_000);
/// assert_eq!(per_record.to_string(), "0.005");
/// assert_eq!(Rate::parse("15").unwrap().to_string(), "15.00");
/// // 3 records at half a cent: 1.5 cents, rounded half-even to 2 cents; 5 records: 2.5 → 2 cents.
/// assert_eq!(per_record.charge(3, 1, Currency::Usd).unwrap().minor, 2);
/// assert_eq!(per_record.charge(5, 1, Currency::Usd).unwrap().minor, 2);
/// assert!(Rate::parse("0.0000001").is_err()); // finer than a micro-unit
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate {
    micro: i64,
}

impl Rate {
    /// Zero.
    pub const ZERO: Rate = Rate { micro: 0 };

    /// A rate of `micro` micro-units; `None` if negative.
    pub fn from_micro(micro: i64) -> Option<Rate> {
        (micro >= 0).then_some(Rate { micro })
    }

    /// The rate in micro-units of the currency.
    pub fn micro(self) -> i64 {
        self.micro
    }

    /// Parses a rate of zero or more with at most 6 decimals: `"0.005"`, `"15.00"`.
    pub fn parse(text: &str) -> Result<Rate, AmountError> {
        parse_decimal(text, RATE_DECIMALS, false, "a rate (micro-units)").map(|micro| Rate { micro })
    }

    /// The exact charge for `quantity` units at this rate per `per` units (1 for per record, 1,000 for per 1,000
    /// records), in minor units of `currency`: `quantity × micro / (per × 10^(6 − exponent))`.
    pub fn exact_charge(self, quantity: u64, per: u64, currency: Currency) -> Exact {
        Exact {
            numerator: i128::from(quantity) * i128::from(self.micro),
            denominator: i128::from(per.max(1)) * pow10(RATE_DECIMALS - currency.exponent()),
        }
    }

    /// The charge for `quantity` units at this rate per unit, in micro-units (exact; for balances kept in micro-units,
    /// such as a prepaid credit debited per delivery); `None` on overflow.
    pub fn micro_charge(self, quantity: u64) -> Option<i64> {
        i64::try_from(i128::from(quantity) * i128::from(self.micro)).ok()
    }

    /// [`Rate::exact_charge`] rounded once, half-even, to the currency's minor unit; `None` on overflow.
    pub fn charge(self, quantity: u64, per: u64, currency: Currency) -> Option<Money> {
        self.exact_charge(quantity, per, currency).round().map(|minor| Money { currency, minor })
    }
}

impl fmt::Display for Rate {
    /// At least two decimals, at most six, trailing zeros beyond two trimmed: `"15.00"`, `"0.005"`, `"0.000001"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let full = format_decimal(self.micro, RATE_DECIMALS);
        let (whole, frac) = full.split_once('.').unwrap_or((&full, "00"));
        let trimmed = frac.trim_end_matches('0');
        write!(f, "{whole}.{trimmed:0<2}")
    }
}

impl FromStr for Rate {
    type Err = AmountError;

    fn from_str(text: &str) -> Result<Rate, AmountError> {
        Rate::parse(text)
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Rate::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_in_micro_units_convert_and_print() {
        assert_eq!(Money::new(Currency::Usd, 150).micro(), Some(1_500_000));
        assert_eq!(Money::new(Currency::Jpy, 3).micro(), Some(3_000_000));
        assert_eq!(Money::new(Currency::Kwd, 1).micro(), Some(1_000));
        assert_eq!(Money::new(Currency::Usd, i64::MAX).micro(), None);
        assert_eq!(format_micro(Currency::Usd, 12_345_000), "12.345 USD");
        assert_eq!(format_micro(Currency::Usd, 500_000), "0.50 USD");
        assert_eq!(format_micro(Currency::Usd, 0), "0.00 USD");
        assert_eq!(format_micro(Currency::Usd, -5_000), "-0.005 USD");
        assert_eq!(format_micro(Currency::Jpy, 3_000_000), "3 JPY");
        assert_eq!(format_micro(Currency::Jpy, 3_500_000), "3.5 JPY");
        assert_eq!(format_micro(Currency::Kwd, 1_000), "0.001 KWD");
    }

    #[test]
    fn decimals_parse_exactly() {
        assert_eq!(parse_decimal("200.00", 2, false, "x"), Ok(20_000));
        assert_eq!(parse_decimal("200", 2, false, "x"), Ok(20_000));
        assert_eq!(parse_decimal("0.5", 2, false, "x"), Ok(50));
        assert_eq!(parse_decimal("1.500", 2, false, "x"), Ok(150), "trailing zeros are not precision");
        assert_eq!(parse_decimal("007.10", 2, false, "x"), Ok(710));
        assert_eq!(parse_decimal("-0", 2, false, "x"), Ok(0));
        assert_eq!(parse_decimal("-1.25", 2, true, "x"), Ok(-125));
        assert_eq!(parse_decimal("92233720368547758.07", 2, false, "x"), Ok(i64::MAX));
        assert_eq!(parse_decimal("-92233720368547758.08", 2, true, "x"), Ok(i64::MIN));
        for bad in ["", "-", ".5", "5.", "+5", " 5", "5 ", "1e3", "1,000", "1_000", "--1", "1.2.3", "٣", "NaN", "0x10"]
        {
            assert_eq!(parse_decimal(bad, 2, true, "x"), Err(AmountError::Malformed(bad.into())), "{bad:?}");
        }
        assert!(matches!(parse_decimal("0.001", 2, false, "x"), Err(AmountError::TooPrecise { decimals: 2, .. })));
        assert!(matches!(parse_decimal("1.5", 0, false, "x"), Err(AmountError::TooPrecise { decimals: 0, .. })));
        assert_eq!(parse_decimal("-1", 2, false, "x"), Err(AmountError::Negative("-1".into())));
        assert_eq!(
            parse_decimal("92233720368547758.08", 2, false, "x"),
            Err(AmountError::TooLarge("92233720368547758.08".into()))
        );
        assert!(matches!(parse_decimal(&"9".repeat(40), 0, false, "x"), Err(AmountError::TooLarge(_))));
    }

    #[test]
    fn decimals_format_back() {
        assert_eq!(format_decimal(20_000, 2), "200.00");
        assert_eq!(format_decimal(5, 2), "0.05");
        assert_eq!(format_decimal(-5, 2), "-0.05");
        assert_eq!(format_decimal(38_000, 0), "38000");
        assert_eq!(format_decimal(i64::MIN, 2), "-92233720368547758.08");
        assert_eq!(Rate::from_micro(1).unwrap().to_string(), "0.000001");
        assert_eq!(Rate::from_micro(15_000_000).unwrap().to_string(), "15.00");
        assert_eq!(Rate::from_micro(15_500_000).unwrap().to_string(), "15.50");
        assert_eq!(Rate::from_micro(0).unwrap().to_string(), "0.00");
        assert_eq!(Rate::from_micro(-1), None);
        assert_eq!(Money::parse(Currency::Kwd, "1.005").unwrap().to_string(), "1.005 KWD");
    }

    #[test]
    fn currencies_have_their_exponent() {
        assert_eq!(Currency::Usd.exponent(), 2);
        assert_eq!(Currency::Eur.exponent(), 2);
        assert_eq!(Currency::Gbp.exponent(), 2);
        assert_eq!(Currency::Jpy.exponent(), 0);
        assert_eq!(Currency::parse("JPY"), Some(Currency::Jpy));
        assert_eq!(Currency::parse("usd"), None);
        assert_eq!(serde_json::to_string(&Currency::Gbp).unwrap(), "\"GBP\"");
        let money: Money = serde_json::from_str(r#"{"currency":"EUR","minor":150}"#).unwrap();
        assert_eq!(money, Money::new(Currency::Eur, 150));
        let rate: Rate = serde_json::from_str("\"0.005\"").unwrap();
        assert_eq!(serde_json::to_string(&rate).unwrap(), "\"0.005\"");
        assert!(serde_json::from_str::<Rate>("\"-1\"").is_err());
    }

    #[test]
    fn money_arithmetic_is_checked() {
        let usd = |m| Money::new(Currency::Usd, m);
        assert_eq!(usd(5).checked_add(usd(7)), Some(usd(12)));
        assert_eq!(usd(5).checked_add(Money::new(Currency::Eur, 7)), None);
        assert_eq!(usd(i64::MAX).checked_add(usd(1)), None);
        assert_eq!(usd(5).checked_sub(usd(7)), Some(usd(-2)));
        assert_eq!(Money::from_units(Currency::Jpy, 5), Some(Money::new(Currency::Jpy, 5)));
        assert_eq!(Money::from_units(Currency::Usd, i64::MAX), None);
    }

    proptest::proptest! {
        #[test]
        fn decimals_round_trip(value in proptest::num::i64::ANY, decimals in 0u32..=6) {
            let text = format_decimal(value, decimals);
            proptest::prop_assert_eq!(parse_decimal(&text, decimals, true, "x"), Ok(value));
        }

        #[test]
        fn rates_round_trip(micro in 0i64..=i64::MAX) {
            let rate = Rate::from_micro(micro).unwrap();
            proptest::prop_assert_eq!(Rate::parse(&rate.to_string()), Ok(rate));
        }

        #[test]
        fn half_even_is_nearest_and_ties_to_even(
            numerator in -1_000_000_000_000i128..1_000_000_000_000,
            denominator in 1i128..1_000_000,
        ) {
            let r = round_half_even(numerator, denominator);
            let error = r * denominator - numerator; // the rounding error, times the denominator
            proptest::prop_assert!(2 * error.abs() <= denominator, "not the nearest");
            if 2 * error.abs() == denominator {
                proptest::prop_assert_eq!(r % 2, 0, "a tie goes to the even neighbour");
            }
        }
    }
}
