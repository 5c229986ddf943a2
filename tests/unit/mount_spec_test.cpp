// docker's mount flags: every accepted form (the whole parsed value compared) and every refusal
// (EINVAL, one line, naming the offending value).
#include "storage/mount_spec.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "util/error.hpp"

namespace berth::storage {

// gtest prints this on a mismatch instead of the object's bytes.
void PrintTo(const MountSpec& s, std::ostream* os) {
  *os << "{" << to_string(s.type) << " source='" << s.source << "' target='" << s.target << "' ro=" << s.read_only
      << " propagation='" << s.propagation << "' bind_recursive='" << s.bind_recursive
      << "' nonrecursive=" << s.bind_nonrecursive << " create_host_path=" << s.create_host_path
      << " nocopy=" << s.nocopy << " subpath='" << s.subpath << "' driver='" << s.driver << "' driver_opts={";
  for (const auto& [k, v] : s.driver_opts) *os << k << "=" << v << ";";
  *os << "} labels={";
  for (const auto& [k, v] : s.labels) *os << k << "=" << v << ";";
  *os << "} tmpfs_size=" << s.tmpfs_size << " tmpfs_mode=0" << std::oct << s.tmpfs_mode << std::dec
      << " tmpfs_options=[";
  for (const auto& o : s.tmpfs_options) *os << o << ",";
  *os << "] consistency='" << s.consistency << "' selinux='" << s.selinux_relabel << "'}";
}

}  // namespace berth::storage

using namespace berth::storage;
using berth::Error;

namespace {

constexpr auto Bind = MountType::Bind;
constexpr auto Volume = MountType::Volume;
constexpr auto Tmpfs = MountType::Tmpfs;

struct Accepted {
  std::string input;
  std::string base_dir;
  MountSpec want;
};

struct Refused {
  std::string input;
  std::string base_dir;
  std::string message;  // a substring of the error
};

// The parser must throw berth::Error with EINVAL, on one line, containing `message`.
void expect_refused(const std::function<void()>& parse, const std::string& message) {
  try {
    parse();
    ADD_FAILURE() << "accepted; expected an error containing: " << message;
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find(message), std::string::npos) << "error: " << what << "\nexpected to contain: " << message;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
    EXPECT_EQ(e.errnum(), EINVAL) << what;
  }
}

TEST(MountSpec, VolumeFlagAccepted) {
  const Accepted cases[] = {
      // Anonymous volumes.
      {"/data", "", {.type = Volume, .target = "/data", .driver = "local"}},
      {"/data/", "", {.type = Volume, .target = "/data", .driver = "local"}},
      {"//data//x/./", "", {.type = Volume, .target = "/data/x", .driver = "local"}},
      // Named volumes.
      {"myvol:/data", "", {.type = Volume, .source = "myvol", .target = "/data", .driver = "local"}},
      {"my_vol.1-x:/data:ro",
       "",
       {.type = Volume, .source = "my_vol.1-x", .target = "/data", .read_only = true, .driver = "local"}},
      {"vol:/c:nocopy", "", {.type = Volume, .source = "vol", .target = "/c", .nocopy = true, .driver = "local"}},
      {"vol:/c:nocopy,ro,delegated,z",
       "",
       {.type = Volume,
        .source = "vol",
        .target = "/c",
        .read_only = true,
        .nocopy = true,
        .driver = "local",
        .consistency = "delegated",
        .selinux_relabel = "z"}},
      {"vol:/c:rw", "", {.type = Volume, .source = "vol", .target = "/c", .driver = "local"}},
      // Binds: the host path is cleaned, -v creates it when missing.
      {"/host:/c", "", {.type = Bind, .source = "/host", .target = "/c", .create_host_path = true}},
      {"/host/../etc/:/c/", "", {.type = Bind, .source = "/etc", .target = "/c", .create_host_path = true}},
      {"/:/host", "", {.type = Bind, .source = "/", .target = "/host", .create_host_path = true}},
      {"/h:/c:", "", {.type = Bind, .source = "/h", .target = "/c", .create_host_path = true}},
      {"/h:/c:rw", "", {.type = Bind, .source = "/h", .target = "/c", .create_host_path = true}},
      {"/h:/c:ro,rshared",
       "",
       {.type = Bind,
        .source = "/h",
        .target = "/c",
        .read_only = true,
        .propagation = "rshared",
        .create_host_path = true}},
      {"/h:/c:Z", "", {.type = Bind, .source = "/h", .target = "/c", .create_host_path = true, .selinux_relabel = "Z"}},
      {"/h:/c:z,ro,cached,slave",
       "",
       {.type = Bind,
        .source = "/h",
        .target = "/c",
        .read_only = true,
        .propagation = "slave",
        .create_host_path = true,
        .consistency = "cached",
        .selinux_relabel = "z"}},
      {"/h:/c:consistent",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .create_host_path = true, .consistency = "consistent"}},
      {"/h:/c:rprivate",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .propagation = "rprivate", .create_host_path = true}},
      // Relative host paths, resolved against the caller's directory as docker's CLI does.
      {"./data:/c", "/proj", {.type = Bind, .source = "/proj/data", .target = "/c", .create_host_path = true}},
      {".:/c", "/proj/", {.type = Bind, .source = "/proj", .target = "/c", .create_host_path = true}},
      {"../x/:/c:ro",
       "/proj",
       {.type = Bind, .source = "/x", .target = "/c", .read_only = true, .create_host_path = true}},
      {"/abs:/c", "/proj", {.type = Bind, .source = "/abs", .target = "/c", .create_host_path = true}},
      {"ab:/c", "/proj", {.type = Volume, .source = "ab", .target = "/c", .driver = "local"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    EXPECT_EQ(parse_volume_flag(c.input, c.base_dir), c.want);
  }
}

TEST(MountSpec, VolumeFlagRefused) {
  const std::string names =
      "includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you "
      "intended to pass a host directory, use absolute path";
  const Refused cases[] = {
      {"", "", "invalid volume specification: ''"},
      {":/data", "", "invalid volume specification: ':/data'"},
      {"/a:/b:ro:x", "", "invalid volume specification: '/a:/b:ro:x'"},
      {"/a:/b:c:d:e", "", "invalid volume specification: '/a:/b:c:d:e'"},
      // A destination with a mode but no source.
      {"/foo:rw", "", "invalid volume specification: '/foo:rw'"},
      {"/foo:ro,z", "", "invalid volume specification: '/foo:ro,z'"},
      {"/foo:", "", "invalid volume specification: '/foo:'"},
      // Modes: unknown, repeated or contradictory.
      {"/a:/b:xx", "", "invalid volume specification: '/a:/b:xx': invalid mode: xx"},
      {"/a:/b:ro,rw", "", "invalid mode: ro,rw"},
      {"/a:/b:ro,ro", "", "invalid mode: ro,ro"},
      {"/a:/b:shared,slave", "", "invalid mode: shared,slave"},
      {"/a:/b:z,Z", "", "invalid mode: z,Z"},
      {"/a:/b:cached,delegated", "", "invalid mode: cached,delegated"},
      {"/a:/b:ro,", "", "invalid mode: ro,"},
      {"/a:/b:RO", "", "invalid mode: RO"},
      {"/a::/b", "", "invalid mode: /b"},
      {"/a:/b:x\ny", "", "invalid mode: x\\ny"},
      // Options of the other type.
      {"/a:/b:nocopy", "",
       "invalid volume specification: '/a:/b:nocopy': invalid mount config for type \"bind\": field VolumeOptions "
       "must not be specified"},
      {"vol:/b:rshared", "",
       "invalid volume specification: 'vol:/b:rshared': invalid mount config for type \"volume\": field BindOptions "
       "must not be specified"},
      // Destinations.
      {"vol:data", "",
       "invalid volume specification: 'vol:data': invalid mount config for type \"volume\": invalid mount path: 'data' "
       "mount path must be absolute"},
      {"data", "", "invalid mount path: 'data' mount path must be absolute"},
      {"/a:/", "",
       "invalid volume specification: '/a:/': invalid mount config for type \"bind\": invalid "
       "specification: destination can't be '/'"},
      {"/a://", "", "destination can't be '/'"},
      {"/a:/.", "", "destination can't be '/'"},
      {"vol:/a/../b", "", "invalid mount path: '/a/../b' must not contain '..'"},
      {"/..", "", "invalid mount path: '/..' must not contain '..'"},
      // Sources that are neither absolute paths nor volume names.
      {"data/x:/c", "", "create data/x: \"data/x\" " + names},
      {"./data:/c", "", "create ./data: \"./data\" " + names},
      {"../data:/c", "", "\"../data\" " + names},
      {".:/c", "", "create .: volume name is too short, names should be at least two alphanumeric characters"},
      {"~/x:/c", "", "\"~/x\" " + names},
      {"-x:/c", "", "\"-x\" " + names},
      {"a:/c", "", "create a: volume name is too short"},
      {"./data:/c", "rel", "base directory 'rel' is not an absolute path"},
      {std::string("/a\0b", 4), "", "invalid volume specification: '/a\\x00b': must not contain a NUL byte"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    expect_refused([&] { parse_volume_flag(c.input, c.base_dir); }, c.message);
  }
}

TEST(MountSpec, MountFlagAccepted) {
  const Accepted cases[] = {
      // Binds: --mount never creates a missing source unless asked to.
      {"type=bind,source=/h,target=/c", "", {.type = Bind, .source = "/h", .target = "/c"}},
      {"type=bind,src=/h/,dst=/c/,readonly", "", {.type = Bind, .source = "/h", .target = "/c", .read_only = true}},
      {"type=bind,src=/h,destination=/c,ro=true",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .read_only = true}},
      {"type=bind,src=/h,target=/c,ro=false", "", {.type = Bind, .source = "/h", .target = "/c"}},
      {"type=bind,src=/h,target=/c,readonly=0", "", {.type = Bind, .source = "/h", .target = "/c"}},
      {"type=bind,src=/h,target=/c,readonly=1,bind-propagation=rslave",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .read_only = true, .propagation = "rslave"}},
      {"type=bind,src=/h,target=/c,bind-propagation=RShared",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .propagation = "rshared"}},
      // Keys and the type are case-insensitive; values otherwise are not.
      {"TYPE=BIND,SRC=/H,Target=/C", "", {.type = Bind, .source = "/H", .target = "/C"}},
      {"type=bind,src=/h,target=/c,bind-recursive=disabled",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .bind_recursive = "disabled", .bind_nonrecursive = true}},
      {"type=bind,src=/h,target=/c,bind-recursive=enabled",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .bind_recursive = "enabled"}},
      {"type=bind,src=/h,target=/c,bind-recursive=writable,readonly",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .read_only = true, .bind_recursive = "writable"}},
      {"type=bind,src=/h,target=/c,bind-recursive=readonly,readonly,bind-propagation=rprivate",
       "",
       {.type = Bind,
        .source = "/h",
        .target = "/c",
        .read_only = true,
        .propagation = "rprivate",
        .bind_recursive = "readonly"}},
      {"type=bind,src=/h,target=/c,bind-recursive=readonly,ro",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .read_only = true, .bind_recursive = "readonly"}},
      {"type=bind,src=/h,target=/c,bind-nonrecursive",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .bind_nonrecursive = true}},
      {"type=bind,src=/h,target=/c,bind-nonrecursive=true,bind-recursive=disabled",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .bind_recursive = "disabled", .bind_nonrecursive = true}},
      {"type=bind,src=/h,target=/c,bind-nonrecursive=false", "", {.type = Bind, .source = "/h", .target = "/c"}},
      {"type=bind,src=/h,target=/c,bind-create-src",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .create_host_path = true}},
      {"type=bind,src=./d,target=/c", "/p", {.type = Bind, .source = "/p/d", .target = "/c"}},
      {"type=bind,src=..,target=/c", "/p/q", {.type = Bind, .source = "/p", .target = "/c"}},
      {"type=bind,src=/h,target=/c,consistency=cached",
       "",
       {.type = Bind, .source = "/h", .target = "/c", .consistency = "cached"}},
      // CSV quoting, as docker's encoding/csv reader.
      {"type=bind,\"src=/h,with,commas\",target=/c", "", {.type = Bind, .source = "/h,with,commas", .target = "/c"}},
      {"type=bind,\"src=/h\"\"q\",target=/c", "", {.type = Bind, .source = "/h\"q", .target = "/c"}},
      {"\"type=bind\",\"src=/h\",\"target=/c\"", "", {.type = Bind, .source = "/h", .target = "/c"}},
      {"type=bind,\"src=/line\nbreak\",target=/c", "", {.type = Bind, .source = "/line\nbreak", .target = "/c"}},
      {"  type=bind,src=/h,target=/c\n", "", {.type = Bind, .source = "/h", .target = "/c"}},
      // Volumes, named and anonymous; the type defaults to volume.
      {"target=/data", "", {.type = Volume, .target = "/data", .driver = "local"}},
      {"src=vol,target=/data", "", {.type = Volume, .source = "vol", .target = "/data", .driver = "local"}},
      {"type=volume,src=vol,dst=/d,readonly",
       "",
       {.type = Volume, .source = "vol", .target = "/d", .read_only = true, .driver = "local"}},
      {"type=volume,src=vol,dst=/d,volume-nocopy",
       "",
       {.type = Volume, .source = "vol", .target = "/d", .nocopy = true, .driver = "local"}},
      {"type=volume,src=vol,dst=/d,volume-nocopy=false",
       "",
       {.type = Volume, .source = "vol", .target = "/d", .driver = "local"}},
      {"type=volume,src=vol,dst=/d,volume-subpath=a/./b/",
       "",
       {.type = Volume, .source = "vol", .target = "/d", .subpath = "a/b", .driver = "local"}},
      {"type=volume,src=vol,dst=/d,volume-driver=nfsish,volume-opt=type=nfs,volume-opt=o=addr=1.2.3.4,"
       "volume-opt=device=:/x,volume-label=a=b,volume-label=c",
       "",
       {.type = Volume,
        .source = "vol",
        .target = "/d",
        .driver = "nfsish",
        .driver_opts = {{"type", "nfs"}, {"o", "addr=1.2.3.4"}, {"device", ":/x"}},
        .labels = {{"a", "b"}, {"c", ""}}}},
      {"type=volume,src=vol,dst=/d,volume-opt=o=1,volume-opt=o=2",
       "",
       {.type = Volume, .source = "vol", .target = "/d", .driver = "local", .driver_opts = {{"o", "2"}}}},
      {"type=volume,src=vol,dst=/d,consistency=default",
       "",
       {.type = Volume, .source = "vol", .target = "/d", .driver = "local", .consistency = "default"}},
      // tmpfs.
      {"type=tmpfs,dst=/t", "", {.type = Tmpfs, .target = "/t"}},
      {"type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770",
       "",
       {.type = Tmpfs, .target = "/t", .tmpfs_size = 64 << 20, .tmpfs_mode = 01770}},
      {"type=tmpfs,dst=/t,tmpfs-size=1.5g", "", {.type = Tmpfs, .target = "/t", .tmpfs_size = 1610612736}},
      {"type=tmpfs,dst=/t,tmpfs-size=100", "", {.type = Tmpfs, .target = "/t", .tmpfs_size = 100}},
      {"type=tmpfs,dst=/t,readonly,tmpfs-mode=0700",
       "",
       {.type = Tmpfs, .target = "/t", .read_only = true, .tmpfs_mode = 0700}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    EXPECT_EQ(parse_mount_flag(c.input, c.base_dir), c.want);
  }
}

TEST(MountSpec, MountFlagRefused) {
  const Refused cases[] = {
      {"", "", "invalid argument \"\" for \"--mount\" flag: value is empty"},
      {"  \t", "", "value is empty"},
      {"type=bind,src=/h,target=/c,foo=bar", "",
       "invalid argument \"type=bind,src=/h,target=/c,foo=bar\" for \"--mount\" flag: unexpected key 'foo' in "
       "'foo=bar'"},
      {"type=bind,src=/h", "", "invalid argument \"type=bind,src=/h\" for \"--mount\" flag: target is required"},
      {"type=foo,target=/c", "", "invalid mount config for type \"foo\": mount type unknown"},
      {"type=npipe,target=/c", "", "mount type 'npipe' is not supported by berth"},
      {"type=cluster,src=x,target=/c", "", "mount type 'cluster' is not supported by berth"},
      {"type=image,src=busybox,target=/c", "", "mount type 'image' is not supported by berth"},
      // Sources.
      {"type=bind,target=/c", "", "invalid mount config for type \"bind\": field Source must not be empty"},
      {"type=bind,src=rel,target=/c", "",
       "invalid mount config for type \"bind\": invalid mount path: 'rel' mount path must be absolute"},
      {"type=bind,src=./rel,target=/c", "", "invalid mount path: './rel' mount path must be absolute"},
      {"type=tmpfs,src=/x,target=/c", "",
       "invalid mount config for type \"tmpfs\": field Source must not be specified"},
      {"type=volume,src=a/b,target=/c", "", "create a/b: \"a/b\" includes invalid characters for a local volume name"},
      {"type=volume,src=/abs,target=/c", "", "\"/abs\" includes invalid characters"},
      // Options of another type.
      {"type=bind,src=/h,target=/c,volume-nocopy", "", "cannot mix 'volume-*' options with mount type 'bind'"},
      {"type=volume,target=/c,bind-propagation=shared", "", "cannot mix 'bind-*' options with mount type 'volume'"},
      {"type=volume,target=/c,tmpfs-size=1m", "", "cannot mix 'tmpfs-*' options with mount type 'volume'"},
      {"type=tmpfs,target=/c,volume-driver=x", "", "cannot mix 'volume-*' options with mount type 'tmpfs'"},
      {"type=tmpfs,target=/c,bind-create-src", "", "cannot mix 'bind-*' options with mount type 'tmpfs'"},
      {"type=bind,src=/h,target=/c,tmpfs-mode=700", "", "cannot mix 'tmpfs-*' options with mount type 'bind'"},
      // Recursive binds.
      {"type=bind,src=/h,target=/c,bind-recursive=writable", "",
       "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"},
      {"type=bind,src=/h,target=/c,bind-recursive=readonly", "",
       "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction"},
      {"type=bind,src=/h,target=/c,bind-recursive=readonly,ro,bind-propagation=shared", "",
       "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction"},
      {"type=bind,src=/h,target=/c,bind-recursive=Enabled", "",
       "invalid value for bind-recursive: Enabled (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"},
      {"type=bind,src=/h,target=/c,bind-nonrecursive,bind-recursive=enabled", "",
       "option 'bind-nonrecursive' conflicts with 'bind-recursive=enabled'"},
      {"type=bind,src=/h,target=/c,bind-propagation=bogus", "",
       "invalid mount config for type \"bind\": invalid propagation mode: bogus"},
      // Values.
      {"type=bind,src=/h,target=/c,readonly=yes", "",
       "invalid value for 'readonly': invalid boolean value (\"yes\"): must be one of \"true\", \"1\", \"false\", or "
       "\"0\" (default \"true\")"},
      {"type=volume,target=/c,volume-nocopy=maybe", "", "invalid value for 'volume-nocopy': invalid boolean value"},
      {"type=bind,src=/h,target=/c,bind-create-src=2", "", "invalid value for 'bind-create-src'"},
      {"type=bind,src=/h,target=/c,readonly=", "", "invalid value for 'readonly': value is empty"},
      {"type=bind,src= ,target=/c", "", "invalid value for 'src': value is empty"},
      {"type=bind,src=/h ,target=/c", "", "invalid value for 'src' in 'src=/h ': value should not have whitespace"},
      {"type=bind,src=/h,target=/c, ro", "", "invalid option 'ro' in ' ro': option should not have whitespace"},
      {"type,src=/h,target=/c", "", "invalid field 'type' must be a key=value pair"},
      {"type=bind,,target=/c", "", "invalid field '' must be a key=value pair"},
      {"type=bind,src=/h,target=/c,", "", "invalid field '' must be a key=value pair"},
      {"type=bind,src=/h,target=/c,consistency=bogus", "", "invalid value for consistency: bogus"},
      {"type=volume,src=vol,target=/c,volume-opt==x", "", "invalid value for volume-opt: '=x' has no key"},
      {"type=volume,src=vol,target=/c,volume-label==x", "", "invalid value for volume-label: '=x' has no key"},
      // CSV.
      {"type=bind,\"src=/h,target=/c", "", "extraneous or missing \" in quoted-field"},
      {"type=bind,src=/h\"x,target=/c", "", "parse error on line 1, column 17: bare \" in non-quoted-field"},
      {"type=bind,\"src=/h\"x,target=/c", "", "extraneous or missing \" in quoted-field"},
      {"type=bind,src=/h,target=/c\nfoo=bar", "", "unexpected newline"},
      {std::string("type=bind,src=/h\0,target=/c", 28), "", "value must not contain a NUL byte"},
      // Volume specifics.
      {"type=volume,target=/c,volume-subpath=x", "",
       "invalid mount config for type \"volume\": must not set Subpath when using anonymous volumes"},
      {"type=volume,src=vol,target=/c,volume-subpath=../x", "", "subpath must be a relative path within the volume"},
      {"type=volume,src=vol,target=/c,volume-subpath=a/../../x", "",
       "subpath must be a relative path within the volume"},
      {"type=volume,src=vol,target=/c,volume-subpath=/x", "", "subpath must be a relative path within the volume"},
      {"type=volume,target=/c,readonly", "",
       "invalid mount config for type \"volume\": must not set ReadOnly mode when using anonymous volumes"},
      // tmpfs specifics.
      {"type=tmpfs,target=/c,tmpfs-size=64x", "", "invalid value for tmpfs-size: 64x"},
      {"type=tmpfs,target=/c,tmpfs-size=-1", "", "invalid value for tmpfs-size: -1"},
      {"type=tmpfs,target=/c,tmpfs-mode=999", "", "invalid value for tmpfs-mode: 999"},
      {"type=tmpfs,target=/c,tmpfs-mode=17777", "", "invalid value for tmpfs-mode: 17777"},
      // Targets.
      {"type=tmpfs,target=rel", "", "invalid mount path: 'rel' mount path must be absolute"},
      {"type=tmpfs,target=/", "", "invalid specification: destination can't be '/'"},
      {"type=bind,src=/h,target=/a/../b", "", "invalid mount path: '/a/../b' must not contain '..'"},
      // The whole value is named, Go-quoted.
      {"type=bind,\"src=/h\"\"q\",foo=1", "",
       "invalid argument \"type=bind,\\\"src=/h\\\"\\\"q\\\",foo=1\" for \"--mount\" flag: unexpected key 'foo'"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    expect_refused([&] { parse_mount_flag(c.input, c.base_dir); }, c.message);
  }
}

TEST(MountSpec, TmpfsFlagAccepted) {
  const Accepted cases[] = {
      {"/t", "", {.type = Tmpfs, .target = "/t"}},
      {"/t/", "", {.type = Tmpfs, .target = "/t"}},
      {"/t:", "", {.type = Tmpfs, .target = "/t"}},
      {"/t:size=64m", "", {.type = Tmpfs, .target = "/t", .tmpfs_size = 64 << 20}},
      {"/t:size=100", "", {.type = Tmpfs, .target = "/t", .tmpfs_size = 100}},
      {"/t:size=0", "", {.type = Tmpfs, .target = "/t"}},
      {"/t:size=1g,mode=1770,uid=1000,gid=1000,noexec,nosuid,nodev",
       "",
       {.type = Tmpfs,
        .target = "/t",
        .tmpfs_size = 1 << 30,
        .tmpfs_mode = 01770,
        .tmpfs_options = {"uid=1000", "gid=1000", "noexec", "nosuid", "nodev"}}},
      // A later option replaces an earlier one of its kind.
      {"/t:exec,noexec", "", {.type = Tmpfs, .target = "/t", .tmpfs_options = {"noexec"}}},
      {"/t:noexec,nodev,exec", "", {.type = Tmpfs, .target = "/t", .tmpfs_options = {"nodev", "exec"}}},
      {"/t:uid=1,uid=2", "", {.type = Tmpfs, .target = "/t", .tmpfs_options = {"uid=2"}}},
      {"/t:size=1m,size=2m", "", {.type = Tmpfs, .target = "/t", .tmpfs_size = 2 << 20}},
      {"/t:uid=007", "", {.type = Tmpfs, .target = "/t", .tmpfs_options = {"uid=7"}}},
      {"/t:ro", "", {.type = Tmpfs, .target = "/t", .read_only = true}},
      {"/t:ro,rw", "", {.type = Tmpfs, .target = "/t"}},
      {"/t:rshared", "", {.type = Tmpfs, .target = "/t", .propagation = "rshared"}},
      {"/t:mode=0", "", {.type = Tmpfs, .target = "/t"}},
      {"/t:nr_inodes=1k,nr_blocks=100,mpol=bind:0-3",
       "",
       {.type = Tmpfs, .target = "/t", .tmpfs_options = {"nr_inodes=1k", "nr_blocks=100", "mpol=bind:0-3"}}},
      {"/t:defaults,noatime,dirsync,async,mand,strictatime,nodiratime,relatime,suid,dev",
       "",
       {.type = Tmpfs,
        .target = "/t",
        .tmpfs_options = {"noatime", "dirsync", "async", "mand", "strictatime", "nodiratime", "relatime", "suid",
                          "dev"}}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    EXPECT_EQ(parse_tmpfs_flag(c.input), c.want);
  }
}

TEST(MountSpec, TmpfsFlagRefused) {
  const Refused cases[] = {
      {"", "", "invalid argument \"\" for \"--tmpfs\" flag: field Target must not be empty"},
      {":size=1m", "", "field Target must not be empty"},
      {"t", "", "invalid argument \"t\" for \"--tmpfs\" flag: invalid mount path: 't' mount path must be absolute"},
      {"/", "", "invalid specification: destination can't be '/'"},
      {"/:size=1m", "", "destination can't be '/'"},
      {"/a/../b", "", "invalid mount path: '/a/../b' must not contain '..'"},
      {"/t:foo", "", "invalid argument \"/t:foo\" for \"--tmpfs\" flag: invalid tmpfs option 'foo'"},
      {"/t:size=64x", "", "invalid tmpfs option 'size=64x': invalid size: '64x'"},
      {"/t:size=50%", "", "invalid tmpfs option 'size=50%'"},
      {"/t:size=-1", "", "invalid tmpfs option 'size=-1'"},
      {"/t:size=", "", "invalid tmpfs option 'size='"},
      {"/t:size", "", "invalid tmpfs option 'size'"},
      {"/t:mode=8", "", "invalid tmpfs option 'mode=8': mode must be octal, at most 7777"},
      {"/t:mode=77777", "", "invalid tmpfs option 'mode=77777'"},
      {"/t:mode=", "", "invalid tmpfs option 'mode='"},
      {"/t:uid=x", "", "invalid tmpfs option 'uid=x': uid must be a number below 4294967295"},
      {"/t:uid=-1", "", "invalid tmpfs option 'uid=-1'"},
      {"/t:gid=4294967295", "", "invalid tmpfs option 'gid=4294967295'"},
      {"/t:gid=99999999999999999999", "", "invalid tmpfs option 'gid=99999999999999999999'"},
      {"/t:nr_inodes=x", "", "invalid tmpfs option 'nr_inodes=x'"},
      {"/t:nr_blocks=k", "", "invalid tmpfs option 'nr_blocks=k'"},
      {"/t:mpol=BIND", "", "invalid tmpfs option 'mpol=BIND'"},
      {"/t:mpol=", "", "invalid tmpfs option 'mpol='"},
      {"/t:bind", "", "invalid tmpfs option 'bind': not supported by berth for a tmpfs"},
      {"/t:remount", "", "invalid tmpfs option 'remount'"},
      {"/t:noexec,,nosuid", "", "invalid tmpfs option ''"},
      {"/t:exec=1", "", "invalid tmpfs option 'exec=1'"},
      {"/t:NOEXEC", "", "invalid tmpfs option 'NOEXEC'"},
      {"/t:x\ty", "", "invalid tmpfs option 'x\\ty'"},
      {std::string("/t\0", 3), "", "must not contain a NUL byte"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.input);
    expect_refused([&] { parse_tmpfs_flag(c.input); }, c.message);
  }
}

TEST(MountSpec, CleanPathLikeGo) {
  // Go's path.Clean test table.
  const std::pair<const char*, const char*> cases[] = {
      {"", "."},
      {"abc", "abc"},
      {"abc/def", "abc/def"},
      {"a/b/c", "a/b/c"},
      {".", "."},
      {"..", ".."},
      {"../..", "../.."},
      {"../../abc", "../../abc"},
      {"/abc", "/abc"},
      {"/", "/"},
      {"abc/", "abc"},
      {"abc/def/", "abc/def"},
      {"a/b/c/", "a/b/c"},
      {"./", "."},
      {"../", ".."},
      {"../../", "../.."},
      {"/abc/", "/abc"},
      {"abc//def//ghi", "abc/def/ghi"},
      {"//abc", "/abc"},
      {"///abc", "/abc"},
      {"//abc//", "/abc"},
      {"abc//", "abc"},
      {"abc/./def", "abc/def"},
      {"/./abc/def", "/abc/def"},
      {"abc/.", "abc"},
      {"abc/def/ghi/../jkl", "abc/def/jkl"},
      {"abc/def/../ghi/../jkl", "abc/jkl"},
      {"abc/def/..", "abc"},
      {"abc/def/../..", "."},
      {"/abc/def/../..", "/"},
      {"abc/def/../../..", ".."},
      {"/abc/def/../../..", "/"},
      {"abc/def/../../../ghi/jkl/../../../mno", "../../mno"},
      {"abc/./../def", "def"},
      {"abc//./../def", "def"},
      {"abc/../../././../def", "../../def"},
      {"/..", "/"},
      {"/../a", "/a"},
  };
  for (const auto& [in, want] : cases) {
    SCOPED_TRACE(in);
    EXPECT_EQ(clean_path(in), want);
    EXPECT_EQ(clean_path(clean_path(in)), want);
  }
}

TEST(MountSpec, RamSizeLikeDockerUnits) {
  const std::pair<const char*, int64_t> good[] = {
      {"0", 0},
      {"100", 100},
      {"100b", 100},
      {"100B", 100},
      {"1k", 1024},
      {"1K", 1024},
      {"1kb", 1024},
      {"1kB", 1024},
      {"1KiB", 1024},
      {"1kib", 1024},
      {"64m", 64 << 20},
      {"64M", 64 << 20},
      {"64MB", 64 << 20},
      {"64MiB", 64 << 20},
      {"1g", 1 << 30},
      {"1.5g", 1610612736},
      {"1 GiB", 1 << 30},
      {"32.5KB", 33280},
      {"0.5k", 512},
      {"1.5", 1},
      {"1.9999", 1},
      {"5 ", 5},
      {"1t", int64_t{1} << 40},
      {"2P", int64_t{2} << 50},
      {"007", 7},
      {"1.0000000000000000000000001k", 1024},
      {"9223372036854775807", INT64_MAX},
      {"8589934591g", 8589934591LL << 30},
      {"8191.999999999p", 9223372036853649908LL},
  };
  for (const auto& [in, want] : good) {
    SCOPED_TRACE(in);
    EXPECT_EQ(parse_ram_size(in), want);
  }
  const char* bad[] = {"",
                       "x",
                       "k",
                       "-1",
                       "-1k",
                       "+1",
                       " 1",
                       "1x",
                       "1kk",
                       "1kbb",
                       "1kibb",
                       "1bb",
                       "1  k",
                       "1 x",
                       ".5",
                       "1.",
                       "1.2.3",
                       "1e3",
                       "1,5g",
                       "0x10",
                       "inf",
                       "nan",
                       "9223372036854775808",
                       "8589934592g",
                       "8192p",
                       "99999999999999999999999999999999999999999",
                       "18446744073709551616"};
  for (const char* in : bad) {
    SCOPED_TRACE(in);
    expect_refused([&] { parse_ram_size(in); }, std::string("invalid size: '") + in + "'");
  }
}

TEST(MountSpec, VolumeNames) {
  const std::string good_names[] = {"ab", "a1", "my_vol", "my-vol.1", "A_", "0-", "a..b", std::string(255, 'x')};
  for (const std::string& good : good_names) {
    SCOPED_TRACE(good);
    EXPECT_NO_THROW(validate_volume_name(good));
  }
  const std::string chars = "includes invalid characters for a local volume name";
  const std::pair<std::string, std::string> bad[] = {
      {"", "volume name must not be empty"},
      {"a", "create a: volume name is too short, names should be at least two alphanumeric characters"},
      {".", "create .: volume name is too short"},
      {"../x", "create ../x: \"../x\" " + chars},
      {"a/b", "\"a/b\" " + chars},
      {"-x", "\"-x\" " + chars},
      {"_x", "\"_x\" " + chars},
      {".x", "\".x\" " + chars},
      {"a b", "\"a b\" " + chars},
      {"a:b", "\"a:b\" " + chars},
      {"a\"b", "\"a\\\"b\" " + chars},
      {"a\nb", "create a\\nb: \"a\\nb\" " + chars},
      {"\xc3\xa4x", chars},
      {std::string(256, 'x'), "volume name is too long (256 bytes), at most 255 are allowed"},
      {std::string(300, 'y'), "create " + std::string(300, 'y') + ": volume name is too long (300 bytes)"},
  };
  for (const auto& [name, message] : bad) {
    SCOPED_TRACE(name);
    expect_refused([&] { validate_volume_name(name); }, message);
  }
}

TEST(MountSpec, DuplicateTargets) {
  auto at = [](std::string target) {
    MountSpec s;
    s.target = std::move(target);
    return s;
  };
  EXPECT_NO_THROW(check_duplicate_targets({}));
  EXPECT_NO_THROW(check_duplicate_targets({at("/a"), at("/b"), at("/a/b")}));
  expect_refused([&] { check_duplicate_targets({at("/data"), at("/data/")}); }, "Duplicate mount point: /data");
  expect_refused(
      [&] {
        check_duplicate_targets({at("/x"), at("/a/b"), at("//a//b/.")});
      },
      "Duplicate mount point: /a/b");
  // Across flags, as docker compares -v, --mount and --tmpfs together.
  expect_refused(
      [&] {
        check_duplicate_targets(
            {parse_volume_flag("vol:/srv/"), parse_mount_flag("type=bind,src=/h,dst=/x"), parse_tmpfs_flag("/srv")});
      },
      "Duplicate mount point: /srv");
}

TEST(MountSpec, TypeNames) {
  EXPECT_EQ(to_string(Bind), "bind");
  EXPECT_EQ(to_string(Volume), "volume");
  EXPECT_EQ(to_string(Tmpfs), "tmpfs");
}

}  // namespace
