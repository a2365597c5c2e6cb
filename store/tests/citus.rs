//! Citus readiness: every tenant table distributes by `tenant_id`. Reads the PostgreSQL
//! catalog after the migrations and fails when a table holding tenant data lacks
//! `tenant_id` in its primary key, in any unique constraint or in any foreign key, or when a
//! new table has no `tenant_id` and is not one of the known platform tables, or when a
//! tenant table does not have row-level security enabled and forced with a policy.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use tenantry_store::Database;
use tenantry_store::testing::Harness;

/// Tables with no tenant: they stay local (or become Citus reference tables).
const PLATFORM_TABLES: &[&str] = &["_sqlx_migrations", "platform_keys", "projection_rebuilds"];

#[tokio::test]
async fn every_tenant_table_is_keyed_by_tenant_id() {
    let Some(h) = Harness::postgres().await else { return };
    let Database::Postgres(pool) = h.store.database() else { unreachable!() };
    let tables: Vec<(String,)> =
        sqlx::query_as("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            .fetch_all(pool)
            .await
            .unwrap();
    assert!(tables.len() >= 15, "the migrations ran: {tables:?}");
    let mut problems = Vec::new();
    for (table,) in &tables {
        let has_tenant: Option<(i32,)> = sqlx::query_as(
            "SELECT 1 FROM information_schema.columns
             WHERE table_schema = 'public' AND table_name = $1 AND column_name = 'tenant_id'",
        )
        .bind(table)
        .fetch_optional(pool)
        .await
        .unwrap();
        if has_tenant.is_none() {
            if !PLATFORM_TABLES.contains(&table.as_str()) {
                problems.push(format!("{table}: no tenant_id column and not a known platform table"));
            }
            continue;
        }
        // Row-level security on and forced, with a policy (migration 0024).
        let (on, forced, policies): (bool, bool, i64) = sqlx::query_as(
            "SELECT c.relrowsecurity, c.relforcerowsecurity,
                    (SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = $1)
             FROM pg_class c WHERE c.relname = $1 AND c.relnamespace = 'public'::regnamespace",
        )
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap();
        if !(on && forced && policies > 0) {
            problems
                .push(format!("{table}: row-level security on {on}, forced {forced}, {policies} policies"));
        }
        // Every primary key, unique and foreign key constraint, with its columns.
        let constraints: Vec<(String, String, Vec<String>)> = sqlx::query_as(
            "SELECT c.conname::text, c.contype::text,
                    ARRAY(SELECT a.attname::text FROM unnest(c.conkey) k
                          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k)
             FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid
             WHERE t.relname = $1 AND c.contype IN ('p', 'u', 'f')",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap();
        if !constraints.iter().any(|(_, kind, _)| kind == "p") {
            problems.push(format!("{table}: no primary key"));
        }
        for (name, _, columns) in &constraints {
            if !columns.iter().any(|c| c == "tenant_id") {
                problems.push(format!("{table}: constraint {name} ({}) lacks tenant_id", columns.join(", ")));
            }
        }
        // Unique indexes made without a constraint count too.
        let indexes: Vec<(String, String)> = sqlx::query_as(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE tablename = $1 AND indexdef LIKE 'CREATE UNIQUE%'",
        )
        .bind(table)
        .fetch_all(pool)
        .await
        .unwrap();
        for (name, def) in indexes {
            if !def.contains("tenant_id") {
                problems.push(format!("{table}: unique index {name} lacks tenant_id"));
            }
        }
    }
    assert!(problems.is_empty(), "not distributable by tenant_id:\n{}", problems.join("\n"));
}
