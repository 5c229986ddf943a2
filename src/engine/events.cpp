#include "engine/events.hpp"

#include "util/sqlite.hpp"

namespace berth::engine {

using nlohmann::json;

std::vector<EventRow> read_events(sql::Db& db, int64_t after) {
  std::vector<EventRow> rows;
  sql::Stmt s(db, "SELECT seq,time_ns,type,action,actor_id,attributes FROM events WHERE seq>? ORDER BY seq");
  s.bind(1, after);
  while (s.step()) {
    EventRow e{s.integer(0), s.integer(1), s.text(2), s.text(3), s.text(4), json::object()};
    e.attributes = json::parse(s.text(5), nullptr, false);
    if (e.attributes.is_discarded()) e.attributes = json::object();
    rows.push_back(std::move(e));
  }
  return rows;
}

std::vector<EventRow> next_events(sql::Db& db, int64_t& last_seq, std::optional<int64_t> since,
                                  std::optional<int64_t> until,
                                  const std::map<std::string, std::vector<std::string>>& filters, bool& past_until) {
  std::vector<EventRow> out;
  past_until = false;
  for (auto& e : read_events(db, last_seq)) {
    last_seq = e.seq;
    if (since && e.time_ns < *since) continue;
    if (until && e.time_ns > *until) {
      past_until = true;
      break;
    }
    if (event_matches(e, filters)) out.push_back(std::move(e));
  }
  return out;
}

int64_t last_event_seq(sql::Db& db) {
  sql::Stmt s(db, "SELECT COALESCE(MAX(seq),0) FROM events");
  return s.step() ? s.integer(0) : 0;
}

namespace {

bool prefix_match(const std::string& value, const std::vector<std::string>& wanted) {
  for (const auto& w : wanted)
    if (value == w || (!w.empty() && value.rfind(w, 0) == 0)) return true;
  return false;
}

}  // namespace

bool event_matches(const EventRow& e, const std::map<std::string, std::vector<std::string>>& filters) {
  auto attr = [&](const std::string& k) {
    return e.attributes.is_object() && e.attributes.contains(k) && e.attributes[k].is_string()
               ? e.attributes[k].get<std::string>()
               : std::string();
  };
  for (const auto& [key, values] : filters) {
    bool ok = false;
    if (key == "type") {
      for (const auto& v : values) ok = ok || v == e.type;
    } else if (key == "event") {
      for (const auto& v : values) ok = ok || v == e.action;
    } else if (key == "container") {
      ok = e.type == "container" && (prefix_match(e.actor, values) || prefix_match(attr("name"), values));
    } else if (key == "image") {
      std::string image = attr("image");
      std::string bare = image.substr(0, image.rfind(':') == std::string::npos || image.rfind(':') < image.rfind('/')
                                             ? image.size()
                                             : image.rfind(':'));
      for (const auto& v : values) ok = ok || v == image || v == bare || (e.type == "image" && v == e.actor);
    } else if (key == "label") {
      for (const auto& v : values) {
        size_t eq = v.find('=');
        std::string k = v.substr(0, eq);
        if (!e.attributes.is_object() || !e.attributes.contains(k)) continue;
        ok = ok || eq == std::string::npos || attr(k) == v.substr(eq + 1);
      }
    } else if (key == "volume" || key == "network" || key == "daemon" || key == "plugin" || key == "node" ||
               key == "service" || key == "secret" || key == "config" || key == "scope") {
      ok = key == "scope" ? prefix_match("local", values) : prefix_match(e.actor, values) && e.type == key;
    }
    if (!ok) return false;
  }
  return true;
}

json event_message(const EventRow& e) {
  json attrs = e.attributes.is_object() ? e.attributes : json::object();
  json m = {{"Type", e.type},
            {"Action", e.action},
            {"Actor", {{"ID", e.actor}, {"Attributes", attrs}}},
            {"scope", "local"},
            {"time", e.time_ns / 1000000000},
            {"timeNano", e.time_ns}};
  if (e.type == "container") {
    m["status"] = e.action;
    m["id"] = e.actor;
    if (attrs.contains("image")) m["from"] = attrs["image"];
  }
  return m;
}

}  // namespace berth::engine
