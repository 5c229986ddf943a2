// Thin RAII wrapper over SQLite: a connection, prepared statements, transactions.
// Errors become berth::Error naming the database path and the statement.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

struct sqlite3;
struct sqlite3_stmt;

namespace berth::sql {

class Db;

class Stmt {
 public:
  Stmt(Db& db, std::string_view sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binds by position (1-based), chaining.
  Stmt& bind(int index, std::string_view value);
  Stmt& bind(int index, int64_t value);
  Stmt& bind_null(int index);
  // Steps once: true while a row is available.
  bool step();
  // Runs to completion (for statements without rows).
  void run();
  void reset();

  std::string text(int column) const;
  int64_t integer(int column) const;
  bool is_null(int column) const;

 private:
  Db& db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
};

class Db {
 public:
  // Opens (creating) the database in WAL mode with a busy timeout, so that any number of
  // berth processes can use it at once.
  explicit Db(const std::string& path);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(std::string_view sql);
  // Brings module's tables up to ddl (idempotent CREATE ... IF NOT EXISTS statements) and runs
  // migrate, in one transaction, only when the database does not record this exact ddl text for
  // the module yet (table berth_schema): a command that opens the database then pays one
  // indexed lookup instead of a lock cycle per statement. Once per module per connection.
  void apply_schema(std::string_view module, std::string_view ddl, const std::function<void()>& migrate = {});
  int64_t changes() const;
  // Inside BEGIN ... COMMIT (statements then join that transaction instead of committing alone).
  bool in_transaction() const;
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void fail(std::string_view what) const;

  // Prepared statements are kept for reuse, keyed by their SQL text (a request of the API server
  // runs the same few statements each time; preparing costs more than running them).
  sqlite3_stmt* take_statement(const std::string& sql);
  void return_statement(const std::string& sql, sqlite3_stmt* stmt);

 private:
  void use_wal();

  sqlite3* db_ = nullptr;
  std::string path_;
  std::set<std::string, std::less<>> schemas_applied_;
  struct StatementCache;
  std::unique_ptr<StatementCache> cache_;
};

// BEGIN IMMEDIATE … COMMIT; rolls back unless commit() was called.
class Transaction {
 public:
  explicit Transaction(Db& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace berth::sql
