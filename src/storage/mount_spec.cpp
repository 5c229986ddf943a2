#include "storage/mount_spec.hpp"

#include <cerrno>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "util/error.hpp"
#include "util/strings.hpp"

namespace berth::storage {

namespace {

[[noreturn]] void fail(const std::string& message) { throw Error(message, EINVAL); }

// A value as it appears inside '…' in a message: control bytes escaped so the message stays on
// one line whatever the user typed.
std::string shown(std::string_view v) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(v.size());
  for (unsigned char c : v) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// Go's %q for the ASCII range, which docker uses in several of these messages.
std::string quoted(std::string_view v) {
  std::string out = "\"";
  for (char c : v) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return shown(out + "\"");
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  for (;;) {
    size_t pos = s.find(sep);
    parts.push_back(s.substr(0, pos));
    if (pos == std::string_view::npos) return parts;
    s.remove_prefix(pos + 1);
  }
}

bool has_dotdot(std::string_view path) {
  for (std::string_view element : split(path, '/'))
    if (element == "..") return true;
  return false;
}

bool is_propagation(std::string_view v) {
  return v == "private" || v == "rprivate" || v == "shared" || v == "rshared" || v == "slave" || v == "rslave";
}

// Empty when the container path is acceptable, else what is wrong with it (the daemon's words).
std::string target_problem(std::string_view target) {
  if (target.empty()) return "field Target must not be empty";
  if (target.front() != '/') return "invalid mount path: '" + shown(target) + "' mount path must be absolute";
  // Refused rather than cleaned away: "/a/../b" almost always means a mistake, and the target is
  // later resolved inside the container's root where ".." has no business.
  if (has_dotdot(target)) return "invalid mount path: '" + shown(target) + "' must not contain '..'";
  if (clean_path(target) == "/") return "invalid specification: destination can't be '/'";
  return "";
}

// A host path the user wrote: absolute, or relative to base_dir when it starts with "." (docker's
// CLI resolves those against its working directory). Empty result: not a host path.
std::string host_path(std::string_view source, std::string_view base_dir) {
  if (!source.empty() && source.front() == '/') return clean_path(source);
  if (!source.empty() && source.front() == '.' && !base_dir.empty()) {
    if (base_dir.front() != '/') fail("base directory '" + shown(base_dir) + "' is not an absolute path");
    return clean_path(std::string(base_dir) + "/" + std::string(source));
  }
  return "";
}

// The -v mode list: each kind of option at most once, as the daemon's linuxValidMountMode.
struct VolumeModes {
  int rw = 0, label = 0, propagation = 0, copy = 0, consistency = 0;
  bool read_only = false, nocopy = false;
  std::string selinux, propagation_mode, consistency_mode;
};

bool parse_volume_modes(std::string_view mode, VolumeModes& m) {
  if (mode.empty()) return true;
  for (std::string_view o : split(mode, ',')) {
    if (o == "ro" || o == "rw") {
      ++m.rw;
      m.read_only = o == "ro";
    } else if (o == "z" || o == "Z") {
      ++m.label;
      m.selinux = o;
    } else if (is_propagation(o)) {
      ++m.propagation;
      m.propagation_mode = o;
    } else if (o == "nocopy") {
      ++m.copy;
      m.nocopy = true;
    } else if (o == "consistent" || o == "cached" || o == "delegated") {
      ++m.consistency;
      m.consistency_mode = o;
    } else {
      return false;
    }
  }
  return m.rw <= 1 && m.label <= 1 && m.propagation <= 1 && m.copy <= 1 && m.consistency <= 1;
}

bool parse_octal_mode(std::string_view v, uint32_t& out) {
  if (v.empty()) return false;
  uint32_t mode = 0;
  for (char c : v) {
    if (c < '0' || c > '7') return false;
    mode = mode * 8 + static_cast<uint32_t>(c - '0');
    // Permission bits only: the file type bits of a Go os.FileMode would mean nothing here.
    if (mode > 07777) return false;
  }
  out = mode;
  return true;
}

bool parse_id(std::string_view v, uint32_t& out) {
  if (v.empty()) return false;
  uint64_t n = 0;
  for (char c : v) {
    if (!is_digit(c)) return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
    // (uid_t)-1 means "no change" to the kernel, never an owner.
    if (n >= UINT32_MAX) return false;
  }
  out = static_cast<uint32_t>(n);
  return true;
}

// Go's encoding/csv reading one record with its defaults (',' separator, strict quotes). Newlines
// outside quotes are refused instead of silently ending the record.
std::vector<std::string> read_csv_record(std::string_view s) {
  std::vector<std::string> fields;
  size_t i = 0;
  auto error = [&](size_t at, const char* what) {
    fail("parse error on line 1, column " + std::to_string(at + 1) + ": " + what);
  };
  for (;;) {
    std::string field;
    if (i < s.size() && s[i] == '"') {
      size_t open = i++;
      for (;;) {
        if (i >= s.size()) error(open, "extraneous or missing \" in quoted-field");
        if (s[i] != '"') {
          field += s[i++];
          continue;
        }
        if (i + 1 < s.size() && s[i + 1] == '"') {
          field += '"';
          i += 2;
          continue;
        }
        ++i;
        if (i < s.size() && s[i] != ',') error(i, "extraneous or missing \" in quoted-field");
        break;
      }
    } else {
      while (i < s.size() && s[i] != ',') {
        if (s[i] == '"') error(i, "bare \" in non-quoted-field");
        if (s[i] == '\n' || s[i] == '\r') error(i, "unexpected newline");
        field += s[i++];
      }
    }
    fields.push_back(std::move(field));
    if (i >= s.size()) return fields;
    ++i;  // the ','
  }
}

// --mount's booleans: bare, or true|1|false|0 (docker's parseBoolValue).
bool mount_bool(std::string_view key, std::string_view val, bool has_value) {
  if (!has_value || val == "1" || val == "true") return true;
  if (val == "0" || val == "false") return false;
  fail("invalid value for '" + std::string(key) + "': invalid boolean value (" + quoted(val) +
       "): must be one of \"true\", \"1\", \"false\", or \"0\" (default \"true\")");
}

// tmpfs flags and the kind each belongs to: a later flag replaces an earlier one of its kind.
struct TmpfsFlag {
  std::string_view name, kind;
};
constexpr TmpfsFlag kTmpfsFlags[] = {
    {"exec", "exec"},
    {"noexec", "exec"},
    {"suid", "suid"},
    {"nosuid", "suid"},
    {"dev", "dev"},
    {"nodev", "dev"},
    {"sync", "sync"},
    {"async", "sync"},
    {"dirsync", "dirsync"},
    {"atime", "atime"},
    {"noatime", "atime"},
    {"diratime", "diratime"},
    {"nodiratime", "diratime"},
    {"relatime", "relatime"},
    {"norelatime", "relatime"},
    {"strictatime", "strictatime"},
    {"nostrictatime", "strictatime"},
    {"mand", "mand"},
    {"nomand", "mand"},
};

const TmpfsFlag* find_tmpfs_flag(std::string_view option) {
  for (const auto& f : kTmpfsFlags)
    if (f.name == option) return &f;
  return nullptr;
}

std::string_view tmpfs_kind(std::string_view option) {
  if (size_t eq = option.find('='); eq != std::string_view::npos) return option.substr(0, eq);
  const TmpfsFlag* flag = find_tmpfs_flag(option);
  return flag ? flag->kind : option;
}

void add_tmpfs_option(std::vector<std::string>& options, std::string option) {
  std::string_view kind = tmpfs_kind(option);
  std::erase_if(options, [&](const std::string& o) { return tmpfs_kind(o) == kind; });
  options.push_back(std::move(option));
}

// nr_inodes / nr_blocks: the kernel's memparse, a number with an optional k, m or g.
bool is_kernel_count(std::string_view v) {
  if (!v.empty() && std::string_view("kKmMgG").find(v.back()) != std::string_view::npos) v.remove_suffix(1);
  if (v.empty() || v.size() > 19) return false;
  for (char c : v)
    if (!is_digit(c)) return false;
  return true;
}

// mpol=default|prefer:N|bind:N-M|interleave|local, with optional =static|=relative flags. Commas
// can't appear: they separate the options.
bool is_mpol(std::string_view v) {
  if (v.empty() || !(v.front() >= 'a' && v.front() <= 'z')) return false;
  for (char c : v)
    if (!(is_alnum(c) || c == ':' || c == '-' || c == '=')) return false;
  return true;
}

}  // namespace

std::string_view to_string(MountType type) {
  switch (type) {
    case MountType::Bind:
      return "bind";
    case MountType::Volume:
      return "volume";
    case MountType::Tmpfs:
      return "tmpfs";
  }
  return "volume";
}

std::string clean_path(std::string_view path) {
  if (path.empty()) return ".";
  bool rooted = path.front() == '/';
  std::vector<std::string_view> elements;
  size_t leading_dotdots = 0;  // ".." kept at the start of a relative path
  for (std::string_view e : split(path, '/')) {
    if (e.empty() || e == ".") continue;
    if (e == "..") {
      if (elements.size() > leading_dotdots) {
        elements.pop_back();
      } else if (!rooted) {
        elements.push_back(e);
        ++leading_dotdots;
      }
      continue;
    }
    elements.push_back(e);
  }
  std::string out = rooted ? "/" : "";
  for (size_t i = 0; i < elements.size(); ++i) {
    if (i) out += '/';
    out += elements[i];
  }
  return out.empty() ? "." : out;
}

int64_t parse_ram_size(std::string_view text) {
  auto invalid = [&]() { fail("invalid size: '" + shown(text) + "'"); };
  size_t i = 0, n = text.size();
  unsigned __int128 whole = 0;
  bool too_large = false;
  size_t int_digits = 0;
  for (; i < n && is_digit(text[i]); ++i, ++int_digits) {
    whole = whole * 10 + static_cast<unsigned>(text[i] - '0');
    if (whole > static_cast<unsigned __int128>(INT64_MAX)) {
      too_large = true;
      whole = static_cast<unsigned __int128>(INT64_MAX) + 1;  // stays bounded however many digits follow
    }
  }
  if (int_digits == 0) invalid();
  // The fraction is kept to 18 digits: later ones change the result by less than a byte for any unit.
  uint64_t frac = 0, frac_scale = 1;
  if (i < n && text[i] == '.') {
    ++i;
    size_t frac_digits = 0;
    for (; i < n && is_digit(text[i]); ++i, ++frac_digits) {
      if (frac_digits < 18) {
        frac = frac * 10 + static_cast<uint64_t>(text[i] - '0');
        frac_scale *= 10;
      }
    }
    if (frac_digits == 0) invalid();
  }
  if (i < n && text[i] == ' ') ++i;
  std::string unit = lower(text.substr(i));
  uint64_t mul = 1;
  if (!unit.empty() && unit != "b") {
    switch (unit[0]) {
      case 'k':
        mul = 1ULL << 10;
        break;
      case 'm':
        mul = 1ULL << 20;
        break;
      case 'g':
        mul = 1ULL << 30;
        break;
      case 't':
        mul = 1ULL << 40;
        break;
      case 'p':
        mul = 1ULL << 50;
        break;
      default:
        invalid();
    }
    std::string_view rest = std::string_view(unit).substr(1);
    if (!rest.empty() && rest != "b" && rest != "ib") invalid();
  }
  if (too_large) invalid();
  unsigned __int128 total = whole * mul + static_cast<unsigned __int128>(frac) * mul / frac_scale;
  if (total > static_cast<unsigned __int128>(INT64_MAX)) invalid();
  return static_cast<int64_t>(total);
}

void validate_volume_name(std::string_view name) {
  if (name.empty()) fail("volume name must not be empty");
  std::string prefix = "create " + shown(name) + ": ";
  if (name.size() == 1) fail(prefix + "volume name is too short, names should be at least two alphanumeric characters");
  bool ok = is_alnum(name.front());
  for (char c : name.substr(1)) ok = ok && (is_alnum(c) || c == '_' || c == '.' || c == '-');
  if (!ok)
    fail(prefix + quoted(name) +
         " includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If "
         "you intended to pass a host directory, use absolute path");
  // NAME_MAX: the volume lives in a directory named after it.
  if (name.size() > 255)
    fail(prefix + "volume name is too long (" + std::to_string(name.size()) + " bytes), at most 255 are allowed");
}

void check_duplicate_targets(const std::vector<MountSpec>& specs) {
  std::set<std::string> seen;
  for (const auto& spec : specs) {
    std::string target = clean_path(spec.target);
    if (!seen.insert(target).second) fail("Duplicate mount point: " + shown(target));
  }
}

MountSpec parse_volume_flag(std::string_view value, std::string_view base_dir) {
  const std::string frame = "invalid volume specification: '" + shown(value) + "'";
  auto invalid = [&](const std::string& detail = "") { fail(detail.empty() ? frame : frame + ": " + detail); };
  if (value.find('\0') != std::string_view::npos) invalid("must not contain a NUL byte");

  // As the daemon's strings.SplitN(raw, ":", 4): a fourth part means too many colons.
  std::vector<std::string_view> parts;
  std::string_view rest = value;
  while (parts.size() < 3) {
    size_t colon = rest.find(':');
    if (colon == std::string_view::npos) break;
    parts.push_back(rest.substr(0, colon));
    rest.remove_prefix(colon + 1);
  }
  parts.push_back(rest);
  if (parts.size() > 3 || parts[0].empty()) invalid();

  std::string_view source, target, mode;
  VolumeModes modes;
  if (parts.size() == 1) {
    target = parts[0];
  } else if (parts.size() == 2) {
    // "/foo:rw" is a destination with a mode, which a volume can't have.
    VolumeModes probe;
    if (parse_volume_modes(parts[1], probe)) invalid();
    source = parts[0];
    target = parts[1];
  } else {
    source = parts[0];
    target = parts[1];
    mode = parts[2];
  }
  if (!parse_volume_modes(mode, modes)) invalid("invalid mode: " + shown(mode));

  MountSpec spec;
  std::string bind_source = host_path(source, base_dir);
  spec.type = bind_source.empty() ? MountType::Volume : MountType::Bind;
  std::string config = "invalid mount config for type \"" + std::string(to_string(spec.type)) + "\": ";
  if (std::string problem = target_problem(target); !problem.empty()) invalid(config + problem);
  if (spec.type == MountType::Bind && modes.nocopy) invalid(config + "field VolumeOptions must not be specified");
  if (spec.type == MountType::Volume && modes.propagation) invalid(config + "field BindOptions must not be specified");

  spec.target = clean_path(target);
  spec.read_only = modes.read_only;
  spec.propagation = modes.propagation_mode;
  spec.nocopy = modes.nocopy;
  spec.consistency = modes.consistency_mode;
  spec.selinux_relabel = modes.selinux;
  if (spec.type == MountType::Bind) {
    spec.source = bind_source;
    spec.create_host_path = true;
  } else {
    if (!source.empty()) validate_volume_name(source);
    spec.source = source;
    spec.driver = "local";
  }
  return spec;
}

MountSpec parse_mount_flag(std::string_view value, std::string_view base_dir) {
  const std::string frame = "invalid argument " + quoted(value) + " for \"--mount\" flag: ";
  try {
    std::string_view trimmed = trim(value);
    if (trimmed.empty()) fail("value is empty");
    if (trimmed.find('\0') != std::string_view::npos) fail("value must not contain a NUL byte");

    MountSpec spec;
    std::string type = "volume", source, target, propagation, subpath;
    bool source_given = false, subpath_given = false, legacy_nonrecursive = false;
    bool bind_opts = false, volume_opts = false, tmpfs_opts = false;
    for (const std::string& field : read_csv_record(trimmed)) {
      size_t eq = field.find('=');
      bool has_value = eq != std::string::npos;
      std::string_view raw_key = std::string_view(field).substr(0, eq);
      std::string_view val = has_value ? std::string_view(field).substr(eq + 1) : std::string_view();
      if (trim(raw_key) != raw_key)
        fail("invalid option '" + shown(trim(raw_key)) + "' in '" + shown(field) +
             "': option should not have whitespace");
      if (has_value) {
        if (trim(val).empty()) fail("invalid value for '" + shown(raw_key) + "': value is empty");
        if (trim(val) != val)
          fail("invalid value for '" + shown(raw_key) + "' in '" + shown(field) +
               "': value should not have whitespace");
      }
      const std::string key = lower(raw_key);
      if (!has_value && key != "readonly" && key != "ro" && key != "volume-nocopy" && key != "bind-nonrecursive" &&
          key != "bind-create-src")
        fail("invalid field '" + shown(field) + "' must be a key=value pair");

      auto key_value = [&](std::map<std::string, std::string>& map) {
        size_t kv = val.find('=');
        if (kv == 0) fail("invalid value for " + key + ": '" + shown(val) + "' has no key");
        map[std::string(val.substr(0, kv))] = kv == std::string_view::npos ? "" : std::string(val.substr(kv + 1));
      };
      if (key == "type") {
        type = lower(val);
      } else if (key == "source" || key == "src") {
        source = val;
        source_given = true;
      } else if (key == "target" || key == "dst" || key == "destination") {
        target = val;
      } else if (key == "readonly" || key == "ro") {
        spec.read_only = mount_bool(key, val, has_value);
      } else if (key == "consistency") {
        spec.consistency = lower(val);
        if (spec.consistency != "consistent" && spec.consistency != "cached" && spec.consistency != "delegated" &&
            spec.consistency != "default")
          fail("invalid value for consistency: " + shown(val));
      } else if (key == "bind-propagation") {
        bind_opts = true;
        propagation = lower(val);
      } else if (key == "bind-recursive") {
        bind_opts = true;
        if (val != "enabled" && val != "disabled" && val != "writable" && val != "readonly")
          fail("invalid value for bind-recursive: " + shown(val) +
               " (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")");
        spec.bind_recursive = val;
      } else if (key == "bind-nonrecursive") {
        bind_opts = true;
        legacy_nonrecursive = mount_bool(key, val, has_value);
      } else if (key == "bind-create-src") {
        bind_opts = true;
        spec.create_host_path = mount_bool(key, val, has_value);
      } else if (key == "volume-subpath") {
        volume_opts = true;
        subpath = val;
        subpath_given = true;
      } else if (key == "volume-nocopy") {
        volume_opts = true;
        spec.nocopy = mount_bool(key, val, has_value);
      } else if (key == "volume-driver") {
        volume_opts = true;
        spec.driver = val;
      } else if (key == "volume-opt") {
        volume_opts = true;
        key_value(spec.driver_opts);
      } else if (key == "volume-label") {
        volume_opts = true;
        key_value(spec.labels);
      } else if (key == "tmpfs-size") {
        tmpfs_opts = true;
        try {
          spec.tmpfs_size = parse_ram_size(val);
        } catch (const Error&) {
          fail("invalid value for tmpfs-size: " + shown(val));
        }
      } else if (key == "tmpfs-mode") {
        tmpfs_opts = true;
        if (!parse_octal_mode(val, spec.tmpfs_mode)) fail("invalid value for tmpfs-mode: " + shown(val));
      } else {
        fail("unexpected key '" + shown(key) + "' in '" + shown(field) + "'");
      }
    }

    if (type == "bind") {
      spec.type = MountType::Bind;
    } else if (type == "volume") {
      spec.type = MountType::Volume;
    } else if (type == "tmpfs") {
      spec.type = MountType::Tmpfs;
    } else if (type == "npipe" || type == "cluster" || type == "image") {
      fail("mount type '" + type + "' is not supported by berth (only bind, volume and tmpfs are)");
    } else {
      fail("invalid mount config for type " + quoted(type) + ": mount type unknown");
    }
    if (bind_opts && spec.type != MountType::Bind) fail("cannot mix 'bind-*' options with mount type '" + type + "'");
    if (volume_opts && spec.type != MountType::Volume)
      fail("cannot mix 'volume-*' options with mount type '" + type + "'");
    if (tmpfs_opts && spec.type != MountType::Tmpfs)
      fail("cannot mix 'tmpfs-*' options with mount type '" + type + "'");
    if (spec.bind_recursive == "writable" && !spec.read_only)
      fail("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction");
    if (spec.bind_recursive == "readonly") {
      if (!spec.read_only) fail("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction");
      // docker's CLI wants bind-propagation=rprivate spelled out; it is the default, so berth
      // accepts it left out too.
      if (!propagation.empty() && propagation != "rprivate")
        fail("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction");
    }
    if (legacy_nonrecursive && !spec.bind_recursive.empty() && spec.bind_recursive != "disabled")
      fail("option 'bind-nonrecursive' conflicts with 'bind-recursive=" + spec.bind_recursive + "'");
    if (target.empty()) fail("target is required");

    const std::string config = "invalid mount config for type \"" + type + "\": ";
    if (std::string problem = target_problem(target); !problem.empty()) fail(config + problem);
    spec.target = clean_path(target);

    switch (spec.type) {
      case MountType::Bind: {
        if (source.empty()) fail(config + "field Source must not be empty");
        spec.source = host_path(source, base_dir);
        if (spec.source.empty())
          fail(config + "invalid mount path: '" + shown(source) + "' mount path must be absolute");
        if (!propagation.empty() && !is_propagation(propagation))
          fail(config + "invalid propagation mode: " + shown(propagation));
        spec.propagation = propagation;
        spec.bind_nonrecursive = legacy_nonrecursive || spec.bind_recursive == "disabled";
        break;
      }
      case MountType::Volume: {
        if (!source.empty()) validate_volume_name(source);
        spec.source = source;
        if (subpath_given) {
          if (source.empty()) fail(config + "must not set Subpath when using anonymous volumes");
          if (subpath.front() == '/' || has_dotdot(subpath))
            fail(config + "subpath must be a relative path within the volume");
          spec.subpath = clean_path(subpath);
        }
        if (spec.read_only && source.empty()) fail(config + "must not set ReadOnly mode when using anonymous volumes");
        if (spec.driver.empty()) spec.driver = "local";
        break;
      }
      case MountType::Tmpfs:
        if (source_given) fail(config + "field Source must not be specified");
        break;
    }
    return spec;
  } catch (const Error& e) {
    fail(frame + e.what());
  }
}

MountSpec parse_tmpfs_flag(std::string_view value) {
  const std::string frame = "invalid argument " + quoted(value) + " for \"--tmpfs\" flag: ";
  auto invalid = [&](const std::string& detail) { fail(frame + detail); };
  if (value.find('\0') != std::string_view::npos) invalid("must not contain a NUL byte");

  size_t colon = value.find(':');
  std::string_view target = value.substr(0, colon);
  std::string_view options = colon == std::string_view::npos ? std::string_view() : value.substr(colon + 1);
  if (std::string problem = target_problem(target); !problem.empty()) invalid(problem);

  MountSpec spec;
  spec.type = MountType::Tmpfs;
  spec.target = clean_path(target);
  if (options.empty()) return spec;
  for (std::string_view option : split(options, ',')) {
    auto bad = [&](const std::string& why = "") {
      invalid("invalid tmpfs option '" + shown(option) + "'" + (why.empty() ? "" : ": " + why));
    };
    size_t eq = option.find('=');
    if (eq != std::string_view::npos) {
      std::string_view key = option.substr(0, eq), val = option.substr(eq + 1);
      if (key == "size") {
        // The kernel also takes "50%"; a size here is bytes, so the caller can account for it.
        try {
          spec.tmpfs_size = parse_ram_size(val);
        } catch (const Error& e) {
          bad(e.what());
        }
      } else if (key == "mode") {
        if (!parse_octal_mode(val, spec.tmpfs_mode)) bad("mode must be octal, at most 7777");
      } else if (key == "uid" || key == "gid") {
        uint32_t id = 0;
        if (!parse_id(val, id)) bad(std::string(key) + " must be a number below 4294967295");
        add_tmpfs_option(spec.tmpfs_options, std::string(key) + "=" + std::to_string(id));
      } else if (key == "nr_inodes" || key == "nr_blocks") {
        if (!is_kernel_count(val)) bad("expected a number with an optional k, m or g");
        add_tmpfs_option(spec.tmpfs_options, std::string(option));
      } else if (key == "mpol") {
        if (!is_mpol(val)) bad();
        add_tmpfs_option(spec.tmpfs_options, std::string(option));
      } else {
        bad();
      }
      continue;
    }
    if (option == "defaults") continue;
    if (option == "ro" || option == "rw") {
      spec.read_only = option == "ro";
    } else if (is_propagation(option)) {
      spec.propagation = option;
    } else if (find_tmpfs_flag(option)) {
      add_tmpfs_option(spec.tmpfs_options, std::string(option));
    } else if (option == "bind" || option == "rbind" || option == "remount" || option == "unbindable" ||
               option == "runbindable") {
      bad("not supported by berth for a tmpfs");
    } else {
      bad();
    }
  }
  return spec;
}

}  // namespace berth::storage
