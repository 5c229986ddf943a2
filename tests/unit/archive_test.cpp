// `import --change`: Dockerfile instructions applied to a container config as docker's
// BuildFromConfig does (expected values checked against moby's dispatchers and buildkit's parser).
#include <gtest/gtest.h>

#include "image/archive.hpp"
#include "util/error.hpp"

using namespace berth;
using namespace berth::image;
using ojson = nlohmann::ordered_json;

namespace {

ojson apply(const std::vector<std::string>& changes) { return apply_changes(empty_container_config(), changes); }

std::string error_of(const std::vector<std::string>& changes) {
  try {
    apply(changes);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Changes, NoChangesLeaveTheConfigAlone) {
  ojson c = apply({});
  EXPECT_EQ(c, empty_container_config());
  EXPECT_TRUE(c["Env"].is_null());
  EXPECT_TRUE(c["Cmd"].is_null());
}

TEST(Changes, CmdAndEntrypointForms) {
  EXPECT_EQ(apply({R"(CMD ["sh", "-c", "echo hi"])"})["Cmd"], ojson({"sh", "-c", "echo hi"}));
  EXPECT_EQ(apply({"CMD echo $HOME"})["Cmd"], ojson({"/bin/sh", "-c", "echo $HOME"}));
  EXPECT_EQ(apply({"cmd []"})["Cmd"], ojson::array());
  EXPECT_EQ(apply({"CMD"})["Cmd"], ojson::array());
  // Not a JSON array of strings: the shell form, as written.
  EXPECT_EQ(apply({"CMD [oops"})["Cmd"], ojson({"/bin/sh", "-c", "[oops"}));
  EXPECT_EQ(error_of({"CMD [1, 2]"}), "when using JSON array syntax, arrays must be comprised of strings only");

  ojson e = apply({"ENTRYPOINT top -b"});
  EXPECT_EQ(e["Entrypoint"], ojson({"/bin/sh", "-c", "top -b"}));
  EXPECT_TRUE(e["Cmd"].is_null());
  // ENTRYPOINT clears a CMD only when no CMD came in the same changes.
  ojson both = apply({R"(CMD ["-x"])", R"(ENTRYPOINT ["/bin/app"])"});
  EXPECT_EQ(both["Cmd"], ojson({"-x"}));
  EXPECT_EQ(both["Entrypoint"], ojson({"/bin/app"}));
  ojson base = empty_container_config();
  base["Cmd"] = ojson({"old"});
  EXPECT_TRUE(apply_changes(base, {R"(ENTRYPOINT ["/bin/app"])"})["Cmd"].is_null());
}

TEST(Changes, EnvFormsQuotingAndExpansion) {
  EXPECT_EQ(apply({"ENV A=b"})["Env"], ojson({"A=b"}));
  EXPECT_EQ(apply({"ENV A hello   world"})["Env"], ojson({"A=hello   world"}));
  EXPECT_EQ(apply({R"(ENV A="x y" B='$A' C=\$A)"})["Env"], ojson({"A=x y", "B=$A", "C=$A"}));
  // Expansion sees the Env from before the instruction, like a Dockerfile.
  ojson c = apply({"ENV A=1", "ENV A=2 B=$A C=${A}x D=${NOPE:-dflt} E=${A:+set} F=${NOPE-u}", "ENV G=\"$B $A\""});
  EXPECT_EQ(c["Env"], ojson({"A=2", "B=1", "C=1x", "D=dflt", "E=set", "F=u", "G=1 2"}));
  ojson base = empty_container_config();
  base["Env"] = ojson({"PATH=/bin", "X=1"});
  EXPECT_EQ(apply_changes(base, {"ENV X=2 PATH=$PATH:/sbin"})["Env"], ojson({"PATH=/bin:/sbin", "X=2"}));

  EXPECT_EQ(error_of({"ENV"}), "ENV requires at least one argument");
  EXPECT_EQ(error_of({"ENV A"}), "ENV must have two arguments");
  EXPECT_EQ(error_of({"ENV A=1 B"}), "Syntax error - can't find = in \"B\". Must be of the form: name=value");
  EXPECT_EQ(error_of({"ENV =x"}), "ENV names can not be blank");
  EXPECT_EQ(error_of({"ENV A=\"x"}), "unexpected end of statement while looking for matching double-quote");
  EXPECT_EQ(error_of({"ENV A=\"${X:?must be set}\""}), "X: must be set");
  EXPECT_EQ(error_of({"ENV A=${X?}"}), "X: is not allowed to be unset");
  EXPECT_EQ(error_of({"ENV A=${}"}), "syntax error: bad substitution");
}

TEST(Changes, LabelsVolumesPortsUserWorkdir) {
  ojson c = apply({R"(LABEL a=b "c d"=e)", "LABEL legacy value with spaces"});
  EXPECT_EQ(c["Labels"], ojson({{"a", "b"}, {"c d", "e"}, {"legacy", "value with spaces"}}));

  EXPECT_EQ(apply({R"(VOLUME ["/data", "/logs"])"})["Volumes"],
            ojson({{"/data", ojson::object()}, {"/logs", ojson::object()}}));
  EXPECT_EQ(apply({"VOLUME /a /b"})["Volumes"], ojson({{"/a", ojson::object()}, {"/b", ojson::object()}}));
  EXPECT_EQ(error_of({"VOLUME"}), "VOLUME requires at least one argument");
  EXPECT_EQ(error_of({R"(VOLUME [""])"}), "VOLUME specified can not be an empty string");

  ojson p = apply({"ENV P=\"7 8\"", "EXPOSE 80 443/udp 8000-8001 $P 9/SCTP"});
  std::vector<std::string> keys;
  for (const auto& [k, v] : p["ExposedPorts"].items()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"80/tcp", "443/udp", "8000/tcp", "8001/tcp", "7/tcp", "8/tcp", "9/sctp"}));
  EXPECT_EQ(error_of({"EXPOSE"}), "EXPOSE requires at least one argument");
  EXPECT_EQ(error_of({"EXPOSE abc"}), "invalid containerPort: abc");
  EXPECT_EQ(error_of({"EXPOSE 80/foo"}), "invalid proto: foo");
  EXPECT_EQ(error_of({"EXPOSE 70000"}), "invalid containerPort: 70000");

  EXPECT_EQ(apply({"ENV U=app", "USER $U:1000"})["User"], "app:1000");
  EXPECT_EQ(error_of({"USER"}), "USER requires exactly one argument");
  EXPECT_EQ(apply({"WORKDIR /app", "WORKDIR sub/../x"})["WorkingDir"], "/app/x");
  EXPECT_EQ(apply({"WORKDIR rel"})["WorkingDir"], "/rel");
  EXPECT_EQ(apply({R"(WORKDIR "/my dir")"})["WorkingDir"], "/my dir");
}

TEST(Changes, StopSignalHealthcheckOnbuild) {
  EXPECT_EQ(apply({"STOPSIGNAL SIGQUIT"})["StopSignal"], "SIGQUIT");
  EXPECT_EQ(apply({"STOPSIGNAL 9"})["StopSignal"], "9");
  EXPECT_EQ(apply({"STOPSIGNAL rtmin+3"})["StopSignal"], "rtmin+3");
  EXPECT_EQ(error_of({"STOPSIGNAL SIGFOO"}), "invalid signal: SIGFOO");
  EXPECT_EQ(error_of({"STOPSIGNAL 0"}), "invalid signal: 0");

  EXPECT_EQ(apply({"HEALTHCHECK NONE"})["Healthcheck"], ojson({{"Test", {"NONE"}}}));
  ojson h = apply({"HEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 CMD curl -f http://x/"})["Healthcheck"];
  EXPECT_EQ(h["Test"], ojson({"CMD-SHELL", "curl -f http://x/"}));
  EXPECT_EQ(h["Interval"], int64_t{90000000000});
  EXPECT_EQ(h["Timeout"], int64_t{500000000});
  EXPECT_EQ(h["Retries"], 3);
  EXPECT_FALSE(h.contains("StartPeriod"));
  EXPECT_EQ(apply({R"(HEALTHCHECK CMD ["/bin/check", "-q"])"})["Healthcheck"]["Test"],
            ojson({"CMD", "/bin/check", "-q"}));
  EXPECT_EQ(error_of({"HEALTHCHECK --interval=5 CMD true"}), "time: missing unit in duration \"5\"");
  EXPECT_EQ(error_of({"HEALTHCHECK --interval=1us CMD true"}), "Interval \"interval\" cannot be less than 1ms");
  EXPECT_EQ(error_of({"HEALTHCHECK --retries=-1 CMD true"}), "--retries cannot be negative (-1)");
  EXPECT_EQ(error_of({"HEALTHCHECK --bogus=1 CMD true"}), "unknown flag: bogus");
  EXPECT_EQ(error_of({"HEALTHCHECK CMD"}), "Missing command after HEALTHCHECK CMD");
  EXPECT_EQ(error_of({"HEALTHCHECK RUN x"}), "Unknown type \"RUN\" in HEALTHCHECK (try CMD)");

  EXPECT_EQ(apply({"ONBUILD RUN echo hi", "onbuild  COPY . /app"})["OnBuild"], ojson({"RUN echo hi", "COPY . /app"}));
  EXPECT_EQ(error_of({"ONBUILD ONBUILD RUN x"}), "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
  EXPECT_EQ(error_of({"ONBUILD from x"}), "FROM isn't allowed as an ONBUILD trigger");
}

TEST(Changes, ParsingAndRefusals) {
  EXPECT_EQ(error_of({"RUN echo hi"}), "RUN is not a valid change command");
  EXPECT_EQ(error_of({"from scratch"}), "from is not a valid change command");
  EXPECT_EQ(error_of({"CMD x", "BOGUS"}), "BOGUS is not a valid change command");
  EXPECT_EQ(error_of({"ENV --x=1 A=b"}), "unknown flag: x");
  // Comments, blank lines and continuations, across and within changes.
  ojson c = apply({"# a comment", "", "ENV A=1 \\", "  B=2", "LABEL x=y \\\n# inside\n z=w"});
  EXPECT_EQ(c["Env"], ojson({"A=1", "B=2"}));
  EXPECT_EQ(c["Labels"], ojson({{"x", "y"}, {"z", "w"}}));
}

TEST(Changes, DockerKeyOrder) {
  ojson c = apply({"EXPOSE 80", "STOPSIGNAL TERM", "HEALTHCHECK NONE", "ENV A=b"});
  std::vector<std::string> keys;
  for (const auto& [k, v] : c.items()) keys.push_back(k);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"Hostname",     "Domainname",   "User",        "AttachStdin", "AttachStdout",
                                      "AttachStderr", "ExposedPorts", "Tty",         "OpenStdin",   "StdinOnce",
                                      "Env",          "Cmd",          "Healthcheck", "Image",       "Volumes",
                                      "WorkingDir",   "Entrypoint",   "OnBuild",     "Labels",      "StopSignal"}));
}

TEST(Changes, GoTimeFormat) {
  EXPECT_EQ(rfc3339_nano(0, 0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(rfc3339_nano(1700000000, 123000000), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(rfc3339_nano(1700000000, 5), "2023-11-14T22:13:20.000000005Z");
}
