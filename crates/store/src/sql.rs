//! Helpers for SQL built at run time (filters): values bound to numbered placeholders.

/// A value bound into dynamically built SQL (placeholders numbered by the builder).
#[derive(Debug, Clone)]
pub enum Bind {
    Text(String),
    OptText(Option<String>),
    Int(i64),
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;
type AnyScalar<'q, T> = sqlx::query::QueryScalar<'q, sqlx::Any, T, sqlx::any::AnyArguments>;

impl Bind {
    pub fn apply<'q>(&self, query: AnyQuery<'q>) -> AnyQuery<'q> {
        match self {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::OptText(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
        }
    }

    pub(crate) fn apply_scalar<'q, T>(&self, query: AnyScalar<'q, T>) -> AnyScalar<'q, T> {
        match self {
            Bind::Text(s) => query.bind(s.clone()),
            Bind::OptText(s) => query.bind(s.clone()),
            Bind::Int(i) => query.bind(*i),
        }
    }
}
