// cascade gen --positions N [--seed S] [--config FILE] [--out FILE]
#include <fstream>
#include <ostream>

#include "engine/generator.hpp"
#include "proto/config.hpp"
#include "proto/default_config.hpp"
#include "proto/positions_csv.hpp"
#include "server/cli.hpp"
#include "server/cli_args.hpp"
#include "server/cli_commands.hpp"

namespace cascade::server {

int cmd_gen(command_args args, std::ostream& out, std::ostream& err) {
  constexpr std::string_view known[] = {"positions", "seed", "config", "out"};
  const auto fail = [&](const absl::Status& s) {
    err << "cascade gen: " << s.message() << '\n';
    return exit_bad_input;
  };
  auto a = cli_args::parse(args, known);
  if (!a.ok()) return fail(a.status());
  if (!a->positional().empty()) return fail(absl::InvalidArgumentError("takes no file argument"));
  auto n = a->count("positions", 0, 1, 100'000'000);
  if (!n.ok()) return fail(n.status());
  if (!a->has("positions")) return fail(absl::InvalidArgumentError("--positions N is required"));
  auto seed = a->count("seed", 42, 0, UINT64_MAX);
  if (!seed.ok()) return fail(seed.status());
  const auto config_path = a->get("config");
  auto cfg = config_path ? proto::load_config_file(*config_path) : proto::load_default_config();
  if (!cfg.ok()) return fail(cfg.status());
  auto positions = generate_positions(cfg->mkt, {*n, *seed});
  if (!positions.ok()) return fail(positions.status());
  if (const auto path = a->get("out")) {
    std::ofstream f(*path, std::ios::binary);
    if (!f) return fail(absl::InvalidArgumentError("--out " + *path + ": cannot open for writing"));
    if (auto s = proto::write_positions_csv(f, *positions, cfg->mkt); !s.ok()) return fail(s);
    return exit_ok;
  }
  if (auto s = proto::write_positions_csv(out, *positions, cfg->mkt); !s.ok()) return fail(s);
  return exit_ok;
}

}  // namespace cascade::server
