//! Property: any sequence of inserts, updates and deletes written on A and shipped to B in
//! arbitrary batches leaves B with A's rows (same row hashes) and A's log.

use proptest::prelude::*;
use sqlx::SqliteConnection;

use super::fixtures::{all_entries, context, node, rows};
use crate::store::{SqlValue, Store, StoreError};

#[derive(Clone, Debug)]
enum Change {
    /// `INSERT OR REPLACE`: an existing row is deleted first (captured through recursive triggers).
    Replace {
        id: i64,
        name: Option<String>,
        price: Option<f64>,
        data: Option<Vec<u8>>,
    },
    InsertOrIgnore {
        id: i64,
        qty: i64,
    },
    Update {
        id: i64,
        qty: i64,
        data: Option<Vec<u8>>,
    },
    /// Moves a row to another key, replacing whatever held it.
    MoveKey {
        from: i64,
        to: i64,
    },
    /// One statement over many rows.
    BumpAll {
        delta: i64,
    },
    Delete {
        id: i64,
    },
    Pair {
        a: String,
        b: i64,
        v: SqlValue,
    },
}

fn value() -> impl Strategy<Value = SqlValue> {
    prop_oneof![
        Just(SqlValue::Null),
        any::<i64>().prop_map(SqlValue::Integer),
        real().prop_map(SqlValue::Real),
        ".{0,12}".prop_map(SqlValue::Text),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(SqlValue::Blob),
    ]
}

fn real() -> impl Strategy<Value = f64> {
    any::<u64>()
        .prop_map(f64::from_bits)
        .prop_filter("SQLite stores NaN as NULL", |r| !r.is_nan())
}

fn change() -> impl Strategy<Value = Change> {
    let id = 0..6i64;
    let data = proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40));
    prop_oneof![
        (
            id.clone(),
            proptest::option::of(".{0,8}"),
            proptest::option::of(real()),
            data.clone()
        )
            .prop_map(|(id, name, price, data)| Change::Replace {
                id,
                name,
                price,
                data
            }),
        (id.clone(), any::<i64>()).prop_map(|(id, qty)| Change::InsertOrIgnore { id, qty }),
        (id.clone(), any::<i64>(), data).prop_map(|(id, qty, data)| Change::Update {
            id,
            qty,
            data
        }),
        (id.clone(), id.clone()).prop_map(|(from, to)| Change::MoveKey { from, to }),
        (-3..3i64).prop_map(|delta| Change::BumpAll { delta }),
        id.prop_map(|id| Change::Delete { id }),
        ("[ab]", 0..3i64, value()).prop_map(|(a, b, v)| Change::Pair { a, b, v }),
    ]
}

async fn run(connection: &mut SqliteConnection, change: &Change) -> Result<(), sqlx::Error> {
    let query = match change {
        Change::Replace {
            id,
            name,
            price,
            data,
        } => {
            sqlx::query("INSERT OR REPLACE INTO items (id, name, price, data) VALUES (?, ?, ?, ?)")
                .bind(id)
                .bind(name)
                .bind(price)
                .bind(data)
        }
        Change::InsertOrIgnore { id, qty } => {
            sqlx::query("INSERT OR IGNORE INTO items (id, qty) VALUES (?, ?)")
                .bind(id)
                .bind(qty)
        }
        Change::Update { id, qty, data } => {
            sqlx::query("UPDATE items SET qty = ?, data = ? WHERE id = ?")
                .bind(qty)
                .bind(data)
                .bind(id)
        }
        Change::MoveKey { from, to } => {
            sqlx::query("UPDATE OR REPLACE items SET id = ? WHERE id = ?")
                .bind(to)
                .bind(from)
        }
        Change::BumpAll { delta } => {
            sqlx::query("UPDATE items SET qty = coalesce(qty, 0) % 1000 + ?").bind(delta)
        }
        Change::Delete { id } => sqlx::query("DELETE FROM items WHERE id = ?").bind(id),
        Change::Pair { a, b, v } => v.bind_to(
            sqlx::query("INSERT OR REPLACE INTO pairs (a, b, v) VALUES (?, ?, ?)")
                .bind(a)
                .bind(b),
        ),
    };
    query.execute(connection).await.map(drop)
}

async fn write_all(store: &Store, transactions: &[Vec<Change>]) {
    for (txid, changes) in transactions.iter().enumerate() {
        store
            .write(
                &context(txid as u64 + 1),
                async |connection: &mut SqliteConnection| {
                    for change in changes {
                        run(connection, change).await?;
                    }
                    Ok::<_, StoreError>(())
                },
            )
            .await
            .unwrap();
    }
}

async fn ship_in_batches(from: &Store, to: &Store, batch_entries: usize) {
    loop {
        let after = to.last_log_position().await.unwrap().idx;
        let batch = from
            .read_log(after, batch_entries, usize::MAX)
            .await
            .unwrap();
        if batch.is_empty() {
            return;
        }
        to.apply_entries(&batch).await.unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn shipped_changes_leave_identical_row_hashes(
        transactions in proptest::collection::vec(proptest::collection::vec(change(), 1..5), 1..12),
        batch_entries in 1..8usize,
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let (a, b) = (node().await, node().await);
            write_all(&a.store, &transactions).await;
            ship_in_batches(&a.store, &b.store, batch_entries).await;
            assert_eq!(b.store.row_hashes().await.unwrap(), a.store.row_hashes().await.unwrap());
            let items = "SELECT *, typeof(price), typeof(data) FROM items ORDER BY id";
            assert_eq!(rows(&b.store, items).await, rows(&a.store, items).await);
            assert_eq!(all_entries(&b.store).await, all_entries(&a.store).await);
        });
    }
}
