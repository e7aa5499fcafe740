// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/setuproot/config.h"

#include <toml++/toml.h>

#include <cerrno>
#include <fstream>
#include <sstream>

namespace cfs::setuproot {

namespace {

std::string where(const std::string& name, const toml::node& n) {
  return fmt::format("{}:{}", name, n.source().begin.line);
}

Result<MountMode> parse_mode(const std::string& name, const toml::node& n) {
  const auto* s = n.as_string();
  if (!s) return errorf(Errc::InvalidArgument, "{}: mount must be a string", where(name, n));
  const std::string& v = s->get();
  if (v == "none" || v == "root") return MountMode::None;
  if (v == "bind") return MountMode::Bind;
  if (v == "overlay") return MountMode::Overlay;
  if (v == "transient" || v == "volatile") return MountMode::Transient;
  return errorf(Errc::InvalidArgument,
                "{}: unknown mount mode \"{}\" (none, bind, overlay, transient; root, volatile)",
                where(name, n), v);
}

Result<bool> parse_bool(const std::string& name, const std::string& key, const toml::node& n) {
  const auto* b = n.as_boolean();
  if (!b) return errorf(Errc::InvalidArgument, "{}: {} must be true or false", where(name, n), key);
  return b->get();
}

// [etc] or [var]: mount wins over transient.
Status parse_dir_table(const std::string& name, const std::string& table, const toml::table& t,
                       MountMode& out, bool& explicit_) {
  std::optional<MountMode> mode;
  bool transient = false;
  for (const auto& [k, v] : t) {
    std::string key(k.str());
    if (key == "mount") {
      auto m = parse_mode(name, v);
      if (!m) return tl::unexpected(m.error());
      mode = *m;
    } else if (key == "transient") {
      auto b = parse_bool(name, table + ".transient", v);
      if (!b) return tl::unexpected(b.error());
      transient = *b;
    } else {
      return errorf(Errc::InvalidArgument, "{}: unknown key \"{}\" in [{}]", where(name, v), key,
                    table);
    }
  }
  explicit_ = !t.empty();  // every key is mount or transient by now
  if (mode)
    out = *mode;
  else if (transient)
    out = MountMode::Transient;
  return {};
}

}  // namespace

Result<Config> parse_config(std::string_view text, const std::string& name) {
  toml::table doc;
  try {
    doc = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    return errorf(Errc::InvalidArgument, "{}:{}: {}", name, e.source().begin.line, e.description());
  }
  Config c;
  for (const auto& [k, v] : doc) {
    std::string key(k.str());
    const toml::table* t = v.as_table();
    if (!t || (key != "root" && key != "etc" && key != "var"))
      return errorf(Errc::InvalidArgument, "{}: unknown table or key \"{}\" (root, etc, var)",
                    where(name, v), key);
    if (key == "root") {
      for (const auto& [rk, rv] : *t) {
        if (rk.str() != "transient")
          return errorf(Errc::InvalidArgument, "{}: unknown key \"{}\" in [root]", where(name, rv),
                        std::string(rk.str()));
        auto b = parse_bool(name, "root.transient", rv);
        if (!b) return tl::unexpected(b.error());
        c.root_transient = *b;
      }
    } else {
      bool etc_explicit = false;
      auto s = key == "etc" ? parse_dir_table(name, key, *t, c.etc, etc_explicit)
                            : parse_dir_table(name, key, *t, c.var, c.var_explicit);
      if (!s) return tl::unexpected(s.error());
    }
  }
  return c;
}

Result<Config> load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return Config{};
    return sys_error(fmt::format("config: reading {}", path));
  }
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return sys_error(fmt::format("config: reading {}", path));
  return parse_config(ss.str(), path);
}

std::string_view to_string(MountMode m) {
  switch (m) {
    case MountMode::None: return "none";
    case MountMode::Bind: return "bind";
    case MountMode::Overlay: return "overlay";
    case MountMode::Transient: return "transient";
  }
  return "?";
}

}  // namespace cfs::setuproot
