//! Exchange rates and conversion into an organisation's reporting currency.
//!
//! A money total in the reporting currency converts each day's amount at that day's rate, so
//! past days keep the rate they had. A day without a rate takes the latest rate of the
//! [`STALE_DAYS`] days before it (markets close at weekends); older than that, or none at all,
//! the conversion is refused rather than guessed. Amounts stay exact (rationals) until the
//! period's total, rounded half to even once to the reporting currency's minor unit.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use chrono::{Days, NaiveDate};
use diesel::sql_types::{Array, Date, Nullable, Text};
use diesel_async::RunQueryDsl;
use uuid::Uuid;

use super::mrr::{parse_decimal, Amount};
use crate::db::{Conn, DbError};

/// How many days back a missing day's rate may be taken from.
pub const STALE_DAYS: u64 = 7;

/// Decimal places of a currency's minor unit (ISO 4217; Stripe's zero-decimal list).
pub fn exponent(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "MGA" | "PYG" | "RWF"
        | "UGX" | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub day: NaiveDate,
    /// ISO 4217, upper case.
    pub base: String,
    pub quote: String,
    /// 1 `base` = `rate` `quote`, exactly as written.
    pub rate: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FxError {
    #[error("line {line}: {reason}")]
    Line { line: usize, reason: String },
    #[error("the file is empty or has no `date,base,quote,rate` header")]
    Header,
}

/// Reads `date,base,quote,rate` rows (a header first; `2025-12-01,EUR,USD,1.0842`). Every
/// problem is reported with its line; nothing is returned unless every row is good.
pub fn parse_csv(input: impl Read) -> Result<Vec<Rate>, FxError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(input);
    let header: Vec<String> = reader
        .headers()
        .map_err(|_| FxError::Header)?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    if header != ["date", "base", "quote", "rate"] {
        return Err(FxError::Header);
    }
    let mut rates = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let bad = |reason: String| FxError::Line { line, reason };
        let record = record.map_err(|e| bad(e.to_string()))?;
        if record.len() != 4 {
            return Err(bad("expected 4 fields".into()));
        }
        let day = NaiveDate::parse_from_str(&record[0], "%Y-%m-%d")
            .map_err(|_| bad(format!("`{}` is not a date (YYYY-MM-DD)", &record[0])))?;
        let code = |s: &str| {
            let upper = s.to_ascii_uppercase();
            (upper.len() == 3 && upper.bytes().all(|b| b.is_ascii_uppercase()))
                .then_some(upper)
                .ok_or_else(|| bad(format!("`{s}` is not an ISO 4217 code")))
        };
        let (base, quote) = (code(&record[1])?, code(&record[2])?);
        if base == quote {
            return Err(bad("base and quote are the same currency".into()));
        }
        let rate = record[3].to_owned();
        if parse_decimal(&rate).is_none_or(|r| r <= Amount::from_integer(0)) {
            return Err(bad(format!("`{rate}` is not a positive decimal rate")));
        }
        rates.push(Rate {
            day,
            base,
            quote,
            rate,
        });
    }
    Ok(rates)
}

/// Stores rates (global when `organization_id` is `None`), replacing any of the same day and
/// pair. Returns how many were written.
pub async fn load(
    conn: &mut Conn,
    organization_id: Option<Uuid>,
    rates: &[Rate],
) -> Result<usize, DbError> {
    let mut written = 0;
    for chunk in rates.chunks(1_000) {
        written += diesel::sql_query(
            "INSERT INTO fx_rates (organization_id, day, base, quote, rate)
             SELECT $1, d, b, q, r::numeric FROM UNNEST($2::date[], $3::text[], $4::text[], $5::text[]) AS t(d, b, q, r)
             ON CONFLICT (COALESCE(organization_id, '00000000-0000-0000-0000-000000000000'::uuid), base, quote, day)
             DO UPDATE SET rate = EXCLUDED.rate, loaded_at = now()",
        )
        .bind::<Nullable<diesel::sql_types::Uuid>, _>(organization_id)
        .bind::<Array<Date>, _>(chunk.iter().map(|r| r.day).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(|r| r.base.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(|r| r.quote.as_str()).collect::<Vec<_>>())
        .bind::<Array<Text>, _>(chunk.iter().map(|r| r.rate.as_str()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    }
    Ok(written)
}

#[derive(diesel::QueryableByName)]
struct Row {
    #[diesel(sql_type = Date)]
    day: NaiveDate,
    #[diesel(sql_type = Text)]
    base: String,
    #[diesel(sql_type = Text)]
    quote: String,
    #[diesel(sql_type = Text)]
    rate: String,
}

/// The rates into one reporting currency over a range of days.
#[derive(Debug, Default)]
pub struct RateBook {
    reporting: String,
    /// Source currency (upper case) → day → units of reporting per unit of source.
    into: HashMap<String, BTreeMap<NaiveDate, Amount>>,
}

impl RateBook {
    /// Loads what converting `from..=to` into `reporting` needs: the organisation's own rates
    /// over the global ones, either direction of the pair.
    pub async fn load(
        conn: &mut Conn,
        organization_id: Uuid,
        reporting: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Self, DbError> {
        let reporting = reporting.to_ascii_uppercase();
        let earliest = from.checked_sub_days(Days::new(STALE_DAYS)).unwrap_or(from);
        let rows: Vec<Row> = diesel::sql_query(
            "SELECT day, base, quote, rate::text AS rate
               FROM fx_rates
              WHERE (organization_id = $1 OR organization_id IS NULL)
                AND (base = $2 OR quote = $2) AND day BETWEEN $3 AND $4
              ORDER BY organization_id IS NOT NULL",
        )
        .bind::<diesel::sql_types::Uuid, _>(organization_id)
        .bind::<Text, _>(&reporting)
        .bind::<Date, _>(earliest)
        .bind::<Date, _>(to)
        .load(conn)
        .await?;
        let mut book = RateBook {
            reporting: reporting.clone(),
            ..Default::default()
        };
        // Global rows first, then the organisation's, which overwrite them.
        for r in rows {
            let Some(rate) = parse_decimal(&r.rate).filter(|x| *x > Amount::from_integer(0)) else {
                continue;
            };
            let (source, per_unit) = if r.quote == reporting {
                (r.base, rate)
            } else {
                (r.quote, Amount::from_integer(1) / rate)
            };
            book.into.entry(source).or_default().insert(r.day, per_unit);
        }
        Ok(book)
    }

    /// The currency it converts into (upper case).
    pub fn reporting(&self) -> &str {
        &self.reporting
    }

    /// `minor` units of `currency` on `day`, in minor units of the reporting currency, exactly;
    /// `None` when no rate of that day or the [`STALE_DAYS`] before it is known.
    pub fn convert(&self, minor: i64, currency: &str, day: NaiveDate) -> Option<Amount> {
        let currency = currency.to_ascii_uppercase();
        let amount = Amount::from_integer(minor.into());
        if currency == self.reporting {
            return Some(amount);
        }
        let earliest = day.checked_sub_days(Days::new(STALE_DAYS))?;
        let (_, rate) = self
            .into
            .get(&currency)?
            .range(earliest..=day)
            .next_back()?;
        let scale = |e: u32| Amount::from_integer(10i128.pow(e));
        Some(amount / scale(exponent(&currency)) * *rate * scale(exponent(&self.reporting)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_rows_are_checked_line_by_line() {
        let good = "date,base,quote,rate\n2025-12-01,EUR,USD,1.0842\n2025-12-01, jpy ,usd,0.0066\n";
        let rates = parse_csv(good.as_bytes()).unwrap();
        assert_eq!(rates.len(), 2);
        assert_eq!(
            (rates[1].base.as_str(), rates[1].quote.as_str()),
            ("JPY", "USD")
        );
        for (bad, line) in [
            ("date,base,quote,rate\n2025-13-01,EUR,USD,1.1\n", 2),
            (
                "date,base,quote,rate\n2025-12-01,EUR,USD,1.1\n2025-12-02,EURO,USD,1.1\n",
                3,
            ),
            ("date,base,quote,rate\n2025-12-01,EUR,USD,-1\n", 2),
            ("date,base,quote,rate\n2025-12-01,USD,USD,1\n", 2),
        ] {
            assert!(
                matches!(parse_csv(bad.as_bytes()), Err(FxError::Line { line: l, .. }) if l == line),
                "{bad}"
            );
        }
        assert_eq!(
            parse_csv("day,from,to,x\n".as_bytes()),
            Err(FxError::Header)
        );
    }

    #[test]
    fn conversion_uses_the_day_and_the_minor_units() {
        let d = |s: &str| -> NaiveDate { s.parse().unwrap() };
        let mut book = RateBook {
            reporting: "USD".into(),
            ..Default::default()
        };
        book.into.insert(
            "EUR".into(),
            BTreeMap::from([(d("2025-12-01"), Amount::new(10842, 10000))]),
        );
        book.into.insert(
            "JPY".into(),
            BTreeMap::from([(d("2025-12-01"), Amount::new(66, 10000))]),
        );
        // €10.00 = $10.842 → 1084.2 cents, exactly.
        assert_eq!(
            book.convert(1_000, "eur", d("2025-12-01")),
            Some(Amount::new(10842, 10))
        );
        // ¥1,000 (no minor unit) = $6.60 = 660 cents.
        assert_eq!(
            book.convert(1_000, "jpy", d("2025-12-01")),
            Some(Amount::from_integer(660))
        );
        // A Sunday takes Friday's rate; eight days later there is none.
        assert!(book.convert(1_000, "eur", d("2025-12-07")).is_some());
        assert_eq!(book.convert(1_000, "eur", d("2025-12-09")), None);
        assert_eq!(book.convert(1_000, "gbp", d("2025-12-01")), None);
        assert_eq!(
            book.convert(1_000, "usd", d("2025-12-01")),
            Some(Amount::from_integer(1_000))
        );
    }
}
