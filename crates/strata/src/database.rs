//! What a run can be pointed at: a database URL, or a connection the application
//! already has.

use std::future::Future;
use std::pin::Pin;

use strata_core::{Driver, Error, Result};
use strata_drivers::HistoryNames;

/// A boxed future, `Send` so a run can be spawned.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Something strata can run migrations on.
///
/// Implemented for a database URL (`&str`, `&String`; strata opens its own connection)
/// and, with the matching feature, for a connection the application already has:
///
/// | feature    | borrowed connection                          |
/// |------------|----------------------------------------------|
/// | `sqlite`   | `&mut rusqlite::Connection`                  |
/// | `postgres` | `&mut tokio_postgres::Client`                |
/// | `mysql`    | `&mut mysql_async::Conn`                     |
///
/// and for `&mut dyn Driver` / `&mut Box<dyn Driver>` from [`crate::connect`]. A
/// borrowed connection is used as it is (its session, its `search_path`) and never
/// closed; it must not be inside a transaction. What needs a second connection of
/// strata's own (PostgreSQL's lease lock behind a pooler, pg_dump backups, reopening
/// after a lost connection) is refused on a borrowed PostgreSQL client.
///
/// Let a run on a borrowed connection finish: a PostgreSQL or MySQL session whose run
/// was cancelled midway (its future dropped) may still hold strata's session lock or an
/// open transaction, so discard that connection. (A borrowed SQLite connection is rolled
/// back when the run is dropped.)
pub trait Database<'a>: Send {
    /// Opens (or wraps) the connection, with strata's tables named by `names`.
    fn connect(self, names: &HistoryNames) -> BoxFuture<'a, Result<Connection<'a>>>;
}

/// A driver strata opened, or one the caller lent.
pub enum Connection<'a> {
    /// Opened for this call (from a URL, or wrapping a borrowed client).
    Opened(Box<dyn Driver + 'a>),
    /// The caller's own driver.
    Lent(&'a mut (dyn Driver + 'a)),
}

impl Connection<'_> {
    /// The driver to run on.
    pub fn driver(&mut self) -> &mut (dyn Driver + '_) {
        match self {
            Connection::Opened(d) => d.as_mut(),
            Connection::Lent(d) => &mut **d,
        }
    }
}

impl<'a> Database<'a> for &'a str {
    fn connect(self, names: &HistoryNames) -> BoxFuture<'a, Result<Connection<'a>>> {
        let names = names.clone();
        Box::pin(async move {
            let d = strata_drivers::connect(self, &names).await?;
            Ok(Connection::Opened(d))
        })
    }
}

impl<'a> Database<'a> for &'a String {
    fn connect(self, names: &HistoryNames) -> BoxFuture<'a, Result<Connection<'a>>> {
        self.as_str().connect(names)
    }
}

impl<'a> Database<'a> for &'a mut (dyn Driver + 'a) {
    fn connect(self, _: &HistoryNames) -> BoxFuture<'a, Result<Connection<'a>>> {
        Box::pin(async move { Ok(Connection::Lent(self)) })
    }
}

impl<'a> Database<'a> for &'a mut Box<dyn Driver> {
    fn connect(self, _: &HistoryNames) -> BoxFuture<'a, Result<Connection<'a>>> {
        Box::pin(async move { Ok(Connection::Lent(self.as_mut())) })
    }
}

#[cfg(feature = "sqlite")]
impl<'a> Database<'a> for &'a mut rusqlite::Connection {
    fn connect(self, names: &HistoryNames) -> BoxFuture<'a, Result<Connection<'a>>> {
        let d = strata_drivers::sqlite::SqliteDriver::borrowed(self, names);
        Box::pin(async move { Ok(Connection::Opened(Box::new(d))) })
    }
}

#[cfg(feature = "postgres")]
impl<'a> Database<'a> for &'a mut tokio_postgres::Client {
    fn connect(self, names: &HistoryNames) -> BoxFuture<'a, Result<Connection<'a>>> {
        let names = names.clone();
        Box::pin(async move {
            let d = strata_drivers::postgres::PgDriver::borrowed(self, &names)
                .await
                .map_err(Error::from)?;
            Ok(Connection::Opened(Box::new(d)))
        })
    }
}

#[cfg(feature = "mysql")]
impl<'a> Database<'a> for &'a mut mysql_async::Conn {
    fn connect(self, names: &HistoryNames) -> BoxFuture<'a, Result<Connection<'a>>> {
        let names = names.clone();
        Box::pin(async move {
            let d = strata_drivers::mysql::MySqlDriver::borrowed(self, &names)
                .await
                .map_err(Error::from)?;
            Ok(Connection::Opened(Box::new(d)))
        })
    }
}
