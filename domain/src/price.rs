//! Prices of tokens, as events on the platform's log (`prices.set`, effective from a time),
//! and the cost of a usage record decided with the price in force when it happened, which the
//! record then carries: a rebuild, another process or an audit replay gives the same money.
//! Budgets are decided against those recorded costs.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::event::{Event, PricesSet};
use crate::ids::StreamId;

/// Price of 1,000 tokens of one model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Price {
    pub prompt_per_1k: Decimal,
    pub completion_per_1k: Decimal,
}

/// Prices per model, the price of models the table does not name (flagged as unpriced), and
/// their currency. The form of `--prices-file` and of `PUT /v1/prices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceTable {
    pub models: HashMap<String, Price>,
    pub default: Price,
    /// ISO 4217; `USD` when not given.
    #[serde(default = "usd")]
    pub currency: String,
}

fn usd() -> String {
    "USD".to_owned()
}

impl Default for PriceTable {
    fn default() -> Self {
        Self {
            models: HashMap::new(),
            default: Price { prompt_per_1k: Decimal::new(1, 3), completion_per_1k: Decimal::new(2, 3) },
            currency: usd(),
        }
    }
}

const NANOS: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

impl PriceTable {
    /// Cost in 1e-9 units, rounded half away from zero once per usage record; and whether
    /// the default price applied.
    pub fn cost_nanos(&self, model: &str, prompt: u64, completion: u64) -> (i64, bool) {
        let (price, unpriced) = match self.models.get(model) {
            Some(p) => (*p, false),
            None => (self.default, true),
        };
        let cost = (Decimal::from(prompt) * price.prompt_per_1k
            + Decimal::from(completion) * price.completion_per_1k)
            / Decimal::from(1000);
        let nanos = (cost * NANOS).round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
        (i64::try_from(nanos).unwrap_or(i64::MAX), unpriced)
    }

    /// Prices must not be negative, the currency is three capital letters.
    pub fn check(&self) -> Result<(), crate::Rejection> {
        let valid =
            |p: &Price| !p.prompt_per_1k.is_sign_negative() && !p.completion_per_1k.is_sign_negative();
        if !valid(&self.default) || !self.models.values().all(valid) {
            return Err(crate::Rejection::invalid("prices", "must not be negative"));
        }
        if self.models.len() > 10_000 || self.models.keys().any(|m| m.is_empty() || m.len() > 200) {
            return Err(crate::Rejection::invalid("models", "1 to 200 characters each, at most 10,000"));
        }
        if self.currency.len() != 3 || !self.currency.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(crate::Rejection::invalid("currency", "three capital letters (ISO 4217)"));
        }
        Ok(())
    }

    /// The table as the event carries it (models in a stable order).
    pub fn to_event(&self, effective_from: DateTime<Utc>) -> Event {
        Event::PricesSet(PricesSet {
            effective_from,
            currency: self.currency.clone(),
            default: self.default,
            models: self.models.iter().map(|(k, v)| (k.clone(), *v)).collect::<BTreeMap<_, _>>(),
        })
    }
}

impl From<&PricesSet> for PriceTable {
    fn from(e: &PricesSet) -> Self {
        Self {
            models: e.models.clone().into_iter().collect(),
            default: e.default,
            currency: e.currency.clone(),
        }
    }
}

/// An exact amount from 1e-9 units, as a decimal string.
pub fn money(nanos: i64) -> String {
    Decimal::new(nanos, 9).normalize().to_string()
}

/// A decimal amount (`"250.00"`) in 1e-9 units; `None` when it is not one, is negative or
/// too large.
pub fn parse_money(text: &str) -> Option<i64> {
    let d: Decimal = text.trim().parse().ok()?;
    if d.is_sign_negative() || d.scale() > 9 {
        return None;
    }
    i64::try_from((d * NANOS).trunc()).ok()
}

/// The platform's stream of price tables.
pub fn stream() -> StreamId {
    StreamId::try_from("prices".to_owned()).unwrap_or_else(|_| StreamId::tenant())
}

/// Every price table set, in order: which is in force when.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PriceHistory {
    /// (effective from, table), in the order set.
    pub tables: Vec<(DateTime<Utc>, PriceTable)>,
}

impl PriceHistory {
    /// The table in force at `at`: of those effective by then, the one with the latest
    /// start (the last set, among equal starts). `None` when none was.
    pub fn in_force(&self, at: DateTime<Utc>) -> Option<&PriceTable> {
        self.tables
            .iter()
            .enumerate()
            .filter(|(_, (from, _))| *from <= at)
            .max_by_key(|(i, (from, _))| (*from, *i))
            .map(|(_, (_, table))| table)
    }
}

pub fn evolve(mut state: PriceHistory, event: &Event) -> PriceHistory {
    if let Event::PricesSet(e) = event {
        state.tables.push((e.effective_from, PriceTable::from(e)));
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(prompt: i64) -> PriceTable {
        PriceTable {
            default: Price { prompt_per_1k: Decimal::new(prompt, 0), completion_per_1k: Decimal::ZERO },
            ..Default::default()
        }
    }

    #[test]
    fn the_table_in_force_is_the_latest_started() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(s, 0).unwrap();
        let history =
            PriceHistory { tables: vec![(t(100), table(1)), (t(300), table(3)), (t(200), table(2))] };
        assert_eq!(history.in_force(t(50)), None);
        assert_eq!(history.in_force(t(150)), Some(&table(1)));
        assert_eq!(history.in_force(t(250)), Some(&table(2)), "set later, effective earlier");
        assert_eq!(history.in_force(t(300)), Some(&table(3)));
    }

    #[test]
    fn money_parses_and_prints_exactly() {
        assert_eq!(parse_money("250.00"), Some(250_000_000_000));
        assert_eq!(parse_money("0.000000001"), Some(1));
        assert_eq!(parse_money("-1"), None);
        assert_eq!(parse_money("1.0000000001"), None);
        assert_eq!(money(250_000_000_000), "250");
    }
}
