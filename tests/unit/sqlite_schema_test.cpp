// sql::Db::apply_schema: statements run once per version of their text, migrations with them,
// and a root made before berth_schema existed is brought up to date.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>

#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/sqlite.hpp"

using namespace berth;

namespace {

class SchemaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/berth-schema-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { remove_tree(dir_); }
  std::string db_path() const { return dir_ + "/state.db"; }

  std::string dir_;
};

int64_t count(sql::Db& db, const std::string& query) {
  sql::Stmt s(db, query);
  EXPECT_TRUE(s.step());
  return s.integer(0);
}

TEST_F(SchemaTest, RunsOncePerVersionOfTheText) {
  const std::string v1 = "CREATE TABLE IF NOT EXISTS t(a INTEGER);";
  int migrations = 0;
  {
    sql::Db db(db_path());
    db.apply_schema("m", v1, [&] { migrations++; });
    db.apply_schema("m", v1, [&] { migrations++; });  // same connection: remembered
    EXPECT_EQ(migrations, 1);
  }
  {
    sql::Db db(db_path());
    db.apply_schema("m", v1, [&] { migrations++; });  // recorded in the database
    EXPECT_EQ(migrations, 1);
  }
  const std::string v2 = v1 + "\nCREATE TABLE IF NOT EXISTS u(b TEXT);";
  {
    sql::Db db(db_path());
    db.apply_schema("m", v2, [&] { migrations++; });
    EXPECT_EQ(migrations, 2);
    EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_schema WHERE name IN ('t','u')"), 2);
  }
}

TEST_F(SchemaTest, ModulesAreIndependent) {
  sql::Db db(db_path());
  db.apply_schema("a", "CREATE TABLE IF NOT EXISTS a1(x);");
  db.apply_schema("b", "CREATE TABLE IF NOT EXISTS b1(x);");
  EXPECT_EQ(count(db, "SELECT count(*) FROM berth_schema"), 2);
  EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_schema WHERE name IN ('a1','b1')"), 2);
}

TEST_F(SchemaTest, AnOlderRootWithoutTheRecordIsUpdated) {
  {
    sql::Db db(db_path());
    db.exec("CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (7);");
  }
  sql::Db db(db_path());
  db.apply_schema("m", "CREATE TABLE IF NOT EXISTS t(a INTEGER); CREATE TABLE IF NOT EXISTS u(b);",
                  [&db] { db.exec("ALTER TABLE t ADD COLUMN c INTEGER NOT NULL DEFAULT 5"); });
  EXPECT_EQ(count(db, "SELECT a + c FROM t"), 12);
  EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_schema WHERE name='u'"), 1);
}

TEST_F(SchemaTest, AFailingMigrationRecordsNothing) {
  sql::Db db(db_path());
  EXPECT_THROW(db.apply_schema("m", "CREATE TABLE IF NOT EXISTS t(a);", [&db] { db.exec("SELECT nonsense FROM"); }),
               Error);
  EXPECT_EQ(count(db, "SELECT count(*) FROM sqlite_schema WHERE name IN ('t','berth_schema')"), 0);
  int runs = 0;
  db.apply_schema("m", "CREATE TABLE IF NOT EXISTS t(a);", [&] { runs++; });
  EXPECT_EQ(runs, 1);
}

}  // namespace
