// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/pe/uki.h"

#include <openssl/evp.h>

#include "composefs-cpp/base/hex.h"
#include "composefs-cpp/boot/os_release.h"

namespace cfs::pe {

Result<std::string> text_section(const PeFile& pe, std::string_view name) {
  const Section* s = pe.find(name);
  if (!s) return errorf(Errc::NotFound, "missing section {}", name);
  auto d = pe.data(*s);
  std::string text(reinterpret_cast<const char*>(d.data()), d.size());
  if (!is_valid_utf8(text)) return errorf(Errc::Corrupt, "section {} is not valid UTF-8", name);
  return text;
}

Result<std::string> boot_label(const PeFile& pe) {
  CFS_TRY_ASSIGN(std::string osrel, text_section(pe, ".osrel"));
  auto label = boot::OsRelease::parse(osrel).boot_label();
  if (!label)
    return make_error(Errc::Corrupt, "section .osrel has none of PRETTY_NAME, NAME and ID");
  return *label;
}

Result<std::string> boot_digest(const PeFile& pe) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || !EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr))
    return make_error(Errc::Io, "cannot start SHA-256");
  for (const char* name : {".linux", ".initrd", ".dtb"}) {
    const Section* s = pe.find(name);
    if (!s) {
      if (std::string_view(name) == ".dtb") continue;
      return errorf(Errc::NotFound, "{} not present", name);
    }
    auto d = pe.data(*s);
    EVP_DigestUpdate(ctx.get(), d.data(), d.size());
  }
  uint8_t md[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &len);
  return to_hex(std::span<const uint8_t>(md, len));
}

std::optional<unsigned> stub_version(const PeFile& pe) {
  const Section* s = pe.find(".sdmagic");
  if (!s) return std::nullopt;
  auto d = pe.data(*s);
  std::string_view text(reinterpret_cast<const char*>(d.data()), d.size());
  constexpr std::string_view kKey = "systemd-stub ";
  size_t at = text.find(kKey);
  if (at == std::string_view::npos) return std::nullopt;
  unsigned v = 0;
  size_t i = at + kKey.size(), digits = 0;
  for (; i < text.size() && text[i] >= '0' && text[i] <= '9' && digits < 6; i++, digits++)
    v = v * 10 + unsigned(text[i] - '0');
  if (!digits) return std::nullopt;
  return v;
}

Status check_addon(const PeFile& pe) {
  if (pe.find(".linux")) return make_error(Errc::InvalidArgument, "an addon must not have .linux");
  for (const char* n : {".cmdline", ".dtb", ".dtbauto", ".initrd", ".ucode"})
    if (pe.find(n)) return {};
  return make_error(Errc::InvalidArgument,
                    "an addon needs at least one of .cmdline, .dtb, .dtbauto, .initrd, .ucode");
}

std::optional<std::string> kernel_release(std::span<const uint8_t> k) {
  // Setup header: "HdrS" at 0x202, kernel_version (offset - 0x200) at 0x20e.
  if (k.size() < 0x210 ||
      std::string_view(reinterpret_cast<const char*>(k.data() + 0x202), 4) != "HdrS")
    return std::nullopt;
  size_t off = size_t(k[0x20e] | k[0x20f] << 8) + 0x200;
  if (off <= 0x200 || off >= k.size()) return std::nullopt;
  std::string out;
  for (size_t i = off; i < k.size() && i < off + 256; i++) {
    char c = static_cast<char>(k[i]);
    if (c == '\0' || c == ' ') break;
    if (c < 0x21 || c > 0x7e) return std::nullopt;
    out += c;
  }
  if (out.empty()) return std::nullopt;
  return out;
}

}  // namespace cfs::pe
