#include "util/sqlite.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <mutex>
#include <tuple>
#include <unordered_map>

#include "util/error.hpp"

namespace berth::sql {

struct Db::StatementCache {
  std::mutex mutex;  // the connection is shared by a pull's layer threads
  std::unordered_map<std::string, sqlite3_stmt*> idle;
};

Db::Db(const std::string& path) : path_(path), cache_(std::make_unique<StatementCache>()) {
  // FULLMUTEX: one connection serves the parallel layer threads of a pull.
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error("open database " + path + ": " + msg);
  }
  // Several berth processes share the file: wait for locks instead of failing with SQLITE_BUSY.
  sqlite3_busy_timeout(db_, 30000);
  // Keep -wal and -shm when the last connection closes (after its checkpoint): every berth command
  // is such a last connection, and deleting and re-creating both files cost each command two
  // inode allocations and frees (and the WAL's first page write) for nothing. The limit bounds
  // what a reset WAL keeps on disk.
  int persist = 1;
  sqlite3_file_control(db_, "main", SQLITE_FCNTL_PERSIST_WAL, &persist);
  use_wal();
  exec("PRAGMA journal_size_limit=4194304");
  exec("PRAGMA synchronous=NORMAL");
  exec("PRAGMA foreign_keys=ON");
}

// WAL is a property of the file: set once, by whichever process creates the database. Switching
// needs an exclusive lock, and SQLite answers SQLITE_BUSY at once (no busy handler: it could
// deadlock) when other processes open the new file at the same moment, so that one step retries.
void Db::use_wal() {
  auto mode = [this](const char* sql) {
    std::string result;
    char* err = nullptr;
    int rc = sqlite3_exec(
        db_, sql,
        [](void* out, int n, char** values, char**) {
          if (n > 0 && values[0]) *static_cast<std::string*>(out) = values[0];
          return 0;
        },
        &result, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    return std::make_pair(rc, rc == SQLITE_OK ? result : msg);
  };
  for (int attempt = 0;; attempt++) {
    auto [rc, text] = mode("PRAGMA journal_mode");
    if (rc == SQLITE_OK && text == "wal") return;
    if (rc == SQLITE_OK) std::tie(rc, text) = mode("PRAGMA journal_mode=WAL");
    if (rc == SQLITE_OK) return;  // "wal", or "memory" for an in-memory database
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || attempt >= 3000)
      throw Error("database " + path_ + ": PRAGMA journal_mode=WAL: " + text);
    ::usleep(10000);
  }
}

Db::~Db() {
  for (auto& [sql, stmt] : cache_->idle) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

sqlite3_stmt* Db::take_statement(const std::string& sql) {
  {
    std::lock_guard lock(cache_->mutex);
    auto it = cache_->idle.find(sql);
    if (it != cache_->idle.end()) {
      sqlite3_stmt* stmt = it->second;
      cache_->idle.erase(it);
      return stmt;
    }
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) !=
      SQLITE_OK)
    fail("prepare \"" + sql + "\"");
  return stmt;
}

void Db::return_statement(const std::string& sql, sqlite3_stmt* stmt) {
  if (!stmt) return;
  sqlite3_reset(stmt);
  sqlite3_clear_bindings(stmt);
  {
    std::lock_guard lock(cache_->mutex);
    // Bounded: statements built with varying text (IN lists) are not worth keeping.
    if (cache_->idle.size() < 128 && cache_->idle.emplace(sql, stmt).second) return;
  }
  sqlite3_finalize(stmt);
}

void Db::fail(std::string_view what) const {
  throw Error("database " + path_ + ": " + std::string(what) + ": " + sqlite3_errmsg(db_));
}

void Db::exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  if (sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw Error("database " + path_ + ": " + s.substr(0, 60) + ": " + msg);
  }
}

void Db::apply_schema(std::string_view module, std::string_view ddl, const std::function<void()>& migrate) {
  if (schemas_applied_.contains(module)) return;
  // FNV-1a of the text: any change to a module's statements applies them again.
  uint64_t hash = 14695981039346656037ULL;
  for (unsigned char ch : ddl) hash = (hash ^ ch) * 1099511628211ULL;
  const auto stamp = static_cast<int64_t>(hash);
  auto recorded = [&] {
    // Roots made before berth_schema existed have no such table: prepare fails, and the schema
    // is applied as on a new root.
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, "SELECT hash FROM berth_schema WHERE module=?", -1, &stmt, nullptr) != SQLITE_OK)
      return false;
    sqlite3_bind_text(stmt, 1, module.data(), static_cast<int>(module.size()), SQLITE_TRANSIENT);
    bool same = sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_int64(stmt, 0) == stamp;
    sqlite3_finalize(stmt);
    return same;
  };
  if (!recorded()) {
    Transaction tx(*this);
    exec(ddl);
    if (migrate) migrate();
    exec("CREATE TABLE IF NOT EXISTS berth_schema(module TEXT PRIMARY KEY, hash INTEGER NOT NULL)");
    Stmt(*this, "INSERT OR REPLACE INTO berth_schema(module, hash) VALUES(?, ?)").bind(1, module).bind(2, stamp).run();
    tx.commit();
  }
  schemas_applied_.emplace(module);
}

int64_t Db::changes() const { return sqlite3_changes64(db_); }

bool Db::in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }

Stmt::Stmt(Db& db, std::string_view sql) : db_(db), sql_(sql) { stmt_ = db_.take_statement(sql_); }

Stmt::~Stmt() { db_.return_statement(sql_, stmt_); }

Stmt& Stmt::bind(int index, std::string_view value) {
  if (sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT) != SQLITE_OK)
    db_.fail("bind " + sql_);
  return *this;
}

Stmt& Stmt::bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) db_.fail("bind " + sql_);
  return *this;
}

Stmt& Stmt::bind_null(int index) {
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) db_.fail("bind " + sql_);
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_.fail("\"" + sql_ + "\"");
}

void Stmt::run() {
  while (step()) {
  }
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Stmt::text(int column) const {
  const unsigned char* p = sqlite3_column_text(stmt_, column);
  return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, column)))
           : std::string();
}

int64_t Stmt::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

bool Stmt::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

Transaction::Transaction(Db& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
    }
  }
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace berth::sql
