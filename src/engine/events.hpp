// The events table (docker's system events): rows the engine appends, read back for
// `berth events` and GET /events.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace berth::sql {
class Db;
}

namespace berth::engine {

struct EventRow {
  int64_t seq, time_ns;
  std::string type, action, actor;
  nlohmann::json attributes;
};

// Rows after seq `after`, oldest first.
std::vector<EventRow> read_events(sql::Db& db, int64_t after);
// The newest row's seq (0 when none): "from now on".
int64_t last_event_seq(sql::Db& db);
// docker's event filters: type, event, container, image, label, volume, network, scope, ….
bool event_matches(const EventRow& e, const std::map<std::string, std::vector<std::string>>& filters);
// The next events for a follower (`berth events`, GET /events): rows after last_seq (advanced
// past every row looked at) within [since, until] that match filters. past_until is set when a
// row after `until` was reached (nothing later can match).
std::vector<EventRow> next_events(sql::Db& db, int64_t& last_seq, std::optional<int64_t> since,
                                  std::optional<int64_t> until,
                                  const std::map<std::string, std::vector<std::string>>& filters, bool& past_until);
// docker's events message (the API's EventMessage, with the old status/id/from fields).
nlohmann::json event_message(const EventRow& e);

}  // namespace berth::engine
