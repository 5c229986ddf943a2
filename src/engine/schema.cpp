#include "engine/schema.hpp"

#include "util/sqlite.hpp"

namespace berth::engine {

namespace {

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS containers(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  image_id TEXT NOT NULL,
  image_name TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  state TEXT NOT NULL,
  config TEXT NOT NULL,
  mounts TEXT NOT NULL DEFAULT '[]',
  pid INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER NOT NULL DEFAULT 0,
  started_at TEXT NOT NULL DEFAULT '',
  finished_at TEXT NOT NULL DEFAULT '',
  restart_count INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  manually_stopped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS container_volumes(
  container_id TEXT NOT NULL,
  volume TEXT NOT NULL,
  anonymous INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(container_id, volume)
);
CREATE INDEX IF NOT EXISTS container_volumes_by_volume ON container_volumes(volume);
CREATE TABLE IF NOT EXISTS volumes(
  name TEXT PRIMARY KEY,
  driver TEXT NOT NULL DEFAULT 'local',
  created_ns INTEGER NOT NULL,
  labels TEXT NOT NULL DEFAULT '{}',
  options TEXT NOT NULL DEFAULT '{}',
  anonymous INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL DEFAULT 'ready'
);
CREATE TABLE IF NOT EXISTS networks(
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  driver TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  subnet TEXT NOT NULL DEFAULT '',
  gateway TEXT NOT NULL DEFAULT '',
  ip_range TEXT NOT NULL DEFAULT '',
  bridge TEXT NOT NULL DEFAULT '',
  internal INTEGER NOT NULL DEFAULT 0,
  mtu INTEGER NOT NULL DEFAULT 0,
  labels TEXT NOT NULL DEFAULT '{}',
  options TEXT NOT NULL DEFAULT '{}',
  state TEXT NOT NULL DEFAULT 'ready'
);
CREATE TABLE IF NOT EXISTS endpoints(
  container_id TEXT NOT NULL,
  network_id TEXT NOT NULL,
  ip TEXT NOT NULL,
  mac TEXT NOT NULL,
  veth TEXT NOT NULL,
  ifname TEXT NOT NULL,
  aliases TEXT NOT NULL DEFAULT '[]',
  position INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(container_id, network_id),
  UNIQUE(network_id, ip)
);
CREATE INDEX IF NOT EXISTS endpoints_by_network ON endpoints(network_id);
CREATE TABLE IF NOT EXISTS ports(
  container_id TEXT NOT NULL,
  proto TEXT NOT NULL,
  host_ip TEXT NOT NULL,
  host_port INTEGER NOT NULL,
  container_ip TEXT NOT NULL,
  container_port INTEGER NOT NULL,
  PRIMARY KEY(proto, host_ip, host_port)
);
CREATE INDEX IF NOT EXISTS ports_by_container ON ports(container_id);
CREATE TABLE IF NOT EXISTS events(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  time_ns INTEGER NOT NULL,
  type TEXT NOT NULL,
  action TEXT NOT NULL,
  actor_id TEXT NOT NULL,
  attributes TEXT NOT NULL DEFAULT '{}'
);
-- reconcile()'s fast path, run by every command: finding pending intents without scanning every
-- volume or container.
CREATE INDEX IF NOT EXISTS volumes_pending ON volumes(state) WHERE state != 'ready';
CREATE INDEX IF NOT EXISTS containers_pending ON containers(state)
  WHERE state IN ('creating','removing','removing-volumes');
)";

}  // namespace

void ensure_schema(sql::Db& db) {
  db.exec("PRAGMA synchronous=FULL");
  db.apply_schema("engine", kSchema, [&db] {
    // Roots made before manually_stopped existed get the column.
    sql::Stmt has(db, "SELECT 1 FROM pragma_table_info('containers') WHERE name='manually_stopped'");
    if (!has.step()) db.exec("ALTER TABLE containers ADD COLUMN manually_stopped INTEGER NOT NULL DEFAULT 0");
  });
}

}  // namespace berth::engine
