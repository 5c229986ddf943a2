// `berth serve`: the Docker Engine API (src/api).
#include "api/api.hpp"
#include "cli/handlers.hpp"

namespace berth::cli {

int cmd_serve(Context& ctx, const Invocation& inv) {
  CommandHelp help{"berth serve [OPTIONS]",
                   "Serve the Docker Engine API (v1.41) so docker, docker-compose and SDKs can drive berth",
                   {{"host", 'H', true, "Socket to listen on (default unix:///run/berth/berth.sock)", "list"},
                    {"tlsverify", 0, false, "Require TLS client certificates (needed for tcp:// hosts)", ""},
                    {"tlscacert", 0, true, "CA certificate for client verification", "string"},
                    {"tlscert", 0, true, "Server certificate", "string"},
                    {"tlskey", 0, true, "Server key", "string"}}};
  ParsedArgs a = parse_command(inv, help);
  require_args(inv, a, 0, 0);
  api::ServeOptions o;
  o.hosts = a.all("host");
  o.root = ctx.root;
  o.insecure_registries = ctx.insecure_registries;
  o.docker_config = ctx.docker_config;
  o.tls_verify = a.has("tlsverify");
  o.tls_ca = a.get("tlscacert", "");
  o.tls_cert = a.get("tlscert", "");
  o.tls_key = a.get("tlskey", "");
  return api::serve(o);
}

}  // namespace berth::cli
