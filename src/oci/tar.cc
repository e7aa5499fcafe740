// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/oci/tar.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>

#include "composefs-cpp/base/base64.h"

namespace cfs::oci {
namespace {

constexpr size_t kBlock = 512;

// ustar header field offsets and lengths.
struct Field {
  size_t off, len;
};
constexpr Field kName{0, 100}, kMode{100, 8}, kUid{108, 8}, kGid{116, 8}, kSize{124, 12},
    kMtime{136, 12}, kChksum{148, 8}, kLinkname{157, 100}, kMagic{257, 6}, kVersion{263, 2},
    kUname{265, 32}, kGname{297, 32}, kDevmajor{329, 8}, kDevminor{337, 8}, kPrefix{345, 155};
constexpr size_t kTypeflag = 156;

std::string_view field(const uint8_t* h, Field f) {
  return {reinterpret_cast<const char*>(h) + f.off, f.len};
}
// A NUL-terminated (or full-length) string field.
std::string cstr_field(const uint8_t* h, Field f) {
  std::string_view v = field(h, f);
  size_t nul = v.find('\0');
  return std::string(nul == std::string_view::npos ? v : v.substr(0, nul));
}

// Numeric fields: octal ASCII (surrounded by spaces/NULs) or GNU base-256
// (high bit of the first byte set; 0xff-led values are negative).
Result<int64_t> parse_numeric(const uint8_t* h, Field f, std::string_view name) {
  const uint8_t* b = h + f.off;
  if (b[0] & 0x80) {
    uint8_t inv = (b[0] & 0x40) ? 0xff : 0;
    uint64_t x = 0;
    for (size_t i = 0; i < f.len; i++) {
      uint8_t c = b[i] ^ inv;
      if (i == 0) c &= 0x7f;
      if (x >> 56) return errorf(Errc::Corrupt, "{} field overflows", name);
      x = x << 8 | c;
    }
    if (x >> 63) return errorf(Errc::Corrupt, "{} field overflows", name);
    return inv ? ~static_cast<int64_t>(x) : static_cast<int64_t>(x);
  }
  std::string_view v = field(h, f);
  size_t i = 0;
  while (i < v.size() && (v[i] == ' ' || v[i] == '\0')) i++;
  uint64_t x = 0;
  size_t digits = 0;
  for (; i < v.size() && v[i] >= '0' && v[i] <= '7'; i++, digits++) {
    if (x >> 60) return errorf(Errc::Corrupt, "{} field overflows", name);
    x = x << 3 | static_cast<uint64_t>(v[i] - '0');
  }
  for (; i < v.size(); i++)
    if (v[i] != ' ' && v[i] != '\0')
      return errorf(Errc::Corrupt, "{} field '{}' is not an octal number", name, cstr_field(h, f));
  return static_cast<int64_t>(x);
}

bool all_zero(const uint8_t* b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (b[i]) return false;
  return true;
}

Status check_checksum(const uint8_t* h) {
  CFS_TRY_ASSIGN(int64_t stored, parse_numeric(h, kChksum, "checksum"));
  int64_t usum = 0, ssum = 0;
  for (size_t i = 0; i < kBlock; i++) {
    bool in_field = i >= kChksum.off && i < kChksum.off + kChksum.len;
    uint8_t c = in_field ? ' ' : h[i];
    usum += c;
    ssum += static_cast<int8_t>(c);
  }
  if (stored != usum && stored != ssum)
    return errorf(Errc::Corrupt, "header checksum mismatch (stored {:o}, computed {:o})", stored,
                  usum);
  return {};
}

Result<uint64_t> parse_decimal(std::string_view v, std::string_view key, uint64_t max) {
  if (v.empty() || v.size() > 20)
    return errorf(Errc::Corrupt, "PAX {} '{}' is not a number", key, v);
  uint64_t x = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return errorf(Errc::Corrupt, "PAX {} '{}' is not a number", key, v);
    if (x > (UINT64_MAX - 9) / 10) return errorf(Errc::Corrupt, "PAX {} '{}' overflows", key, v);
    x = x * 10 + static_cast<uint64_t>(c - '0');
  }
  if (x > max) return errorf(Errc::Corrupt, "PAX {} {} is out of range", key, x);
  return x;
}

// "[-]sec[.frac]" with nanosecond precision (more digits are truncated).
Status parse_pax_time(std::string_view v, int64_t& sec, uint32_t& nsec) {
  bool neg = !v.empty() && v[0] == '-';
  if (neg) v.remove_prefix(1);
  std::string_view whole = v, frac;
  if (size_t dot = v.find('.'); dot != std::string_view::npos) {
    whole = v.substr(0, dot);
    frac = v.substr(dot + 1);
  }
  CFS_TRY_ASSIGN(uint64_t s, parse_decimal(whole, "mtime", INT64_MAX - 1));
  uint32_t ns = 0;
  for (size_t i = 0; i < frac.size(); i++) {
    if (frac[i] < '0' || frac[i] > '9')
      return errorf(Errc::Corrupt, "PAX mtime '{}' is not a number", v);
    if (i < 9) ns = ns * 10 + static_cast<uint32_t>(frac[i] - '0');
  }
  for (size_t i = frac.size(); i < 9; i++) ns *= 10;
  if (!neg) {
    sec = static_cast<int64_t>(s);
    nsec = ns;
  } else if (ns == 0) {
    sec = -static_cast<int64_t>(s);
    nsec = 0;
  } else {
    sec = -static_cast<int64_t>(s) - 1;
    nsec = 1000000000u - ns;
  }
  return {};
}

// The PAX keys an entry uses; the others (atime, ctime, comment, vendor
// keys...) are validated and dropped, so junk records cost no memory.
bool pax_key_used(std::string_view k) {
  return k == "path" || k == "linkpath" || k == "size" || k == "mtime" || k == "uid" ||
         k == "gid" || k == "uname" || k == "gname" || k.starts_with("SCHILY.xattr.") ||
         k.starts_with("LIBARCHIVE.xattr.") || k.starts_with("GNU.sparse.");
}

// PAX records: "<len> <key>=<value>\n", len counting the whole record.
// With `out` null, the records are only validated (global headers).
Status parse_pax(std::string_view data, std::map<std::string, std::string>* out) {
  size_t pos = 0;
  while (pos < data.size()) {
    // Some writers pad the record block with NULs.
    if (data[pos] == '\0' && data.find_first_not_of('\0', pos) == std::string_view::npos) break;
    size_t sp = data.find(' ', pos);
    if (sp == std::string_view::npos || sp == pos || sp - pos > 20)
      return errorf(Errc::Corrupt, "malformed PAX record at byte {}", pos);
    auto len = parse_decimal(data.substr(pos, sp - pos), "record length", data.size() - pos);
    if (!len || *len <= sp - pos + 1)
      return errorf(Errc::Corrupt, "malformed PAX record length at byte {}", pos);
    std::string_view rec = data.substr(sp + 1, pos + *len - sp - 1);
    if (rec.empty() || rec.back() != '\n')
      return errorf(Errc::Corrupt, "PAX record at byte {} does not end in a newline", pos);
    rec.remove_suffix(1);
    size_t eq = rec.find('=');
    if (eq == std::string_view::npos || eq == 0)
      return errorf(Errc::Corrupt, "PAX record at byte {} has no key", pos);
    if (out && pax_key_used(rec.substr(0, eq)))
      (*out)[std::string(rec.substr(0, eq))] = std::string(rec.substr(eq + 1));
    pos += *len;
  }
  return {};
}

Result<std::string> percent_decode(std::string_view in) {
  std::string out;
  for (size_t i = 0; i < in.size(); i++) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size())
      return make_error(Errc::Corrupt, "bad %-escape in a LIBARCHIVE.xattr name");
    auto hexv = [](char c) {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int a = hexv(in[i + 1]), b = hexv(in[i + 2]);
    if (a < 0 || b < 0) return make_error(Errc::Corrupt, "bad %-escape in a LIBARCHIVE.xattr name");
    out.push_back(static_cast<char>(a << 4 | b));
    i += 2;
  }
  return out;
}

}  // namespace

Result<std::string> normalize_tar_path(std::string_view raw) {
  if (raw.empty()) return make_error(Errc::Corrupt, "empty path");
  if (raw.find('\0') != std::string_view::npos)
    return make_error(Errc::Corrupt, "path contains a NUL byte");
  if (raw.size() >= kPathMax)
    return errorf(Errc::TooBig, "path of {} bytes is longer than {}", raw.size(), kPathMax - 1);
  if (raw[0] == '/' && raw.find_first_not_of('/') != std::string_view::npos)
    return errorf(Errc::Corrupt, "absolute path '{}'", raw);
  std::string out;
  size_t i = 0;
  while (i < raw.size()) {
    size_t j = raw.find('/', i);
    if (j == std::string_view::npos) j = raw.size();
    std::string_view c = raw.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") return errorf(Errc::Corrupt, "path '{}' contains '..'", raw);
    if (c.size() > kMaxNameLength)
      return errorf(Errc::TooBig, "path '{}' has a component longer than {} bytes", raw,
                    kMaxNameLength);
    if (!out.empty()) out += '/';
    out += c;
  }
  return out;
}

Status TarReader::emit(std::span<const uint8_t> bytes) {
  if (raw_ && !bytes.empty()) return raw_(bytes);
  return {};
}

Status TarReader::read_exact(std::span<uint8_t> buf) {
  CFS_TRY_ASSIGN(size_t n, read_up_to(in_, buf));
  offset_ += n;
  if (n != buf.size())
    return errorf(Errc::Corrupt, "tar stream truncated at offset {} ({} more bytes expected)",
                  offset_, buf.size() - n);
  return {};
}

Result<bool> TarReader::read_block(uint8_t* block, bool eof_ok) {
  CFS_TRY_ASSIGN(size_t n, read_up_to(in_, {block, kBlock}));
  if (n == 0 && eof_ok) return false;
  offset_ += n;
  if (n != kBlock)
    return errorf(Errc::Corrupt, "tar stream truncated at offset {} (inside a header block)",
                  offset_);
  CFS_TRY(emit({block, kBlock}));
  return true;
}

Status TarReader::finish_entry() {
  if (!raw_ && data_left_ + pad_left_ > 0) {
    CFS_TRY_ASSIGN(bool skipped, in_.skip(data_left_ + pad_left_));
    if (skipped) {
      offset_ += data_left_ + pad_left_;
      data_left_ = pad_left_ = 0;
      return {};
    }
  }
  uint8_t buf[65536];
  while (data_left_ + pad_left_ > 0) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof buf, data_left_ + pad_left_));
    CFS_TRY(read_exact({buf, n}));
    CFS_TRY(emit({buf, n}));
    uint64_t from_data = std::min<uint64_t>(n, data_left_);
    data_left_ -= from_data;
    pad_left_ -= n - from_data;
  }
  return {};
}

Result<size_t> TarReader::read_data(std::span<uint8_t> buf) {
  if (data_left_ == 0 || buf.empty()) return 0;
  size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), data_left_));
  CFS_TRY_ASSIGN(size_t n, in_.read(buf.first(want)));
  if (n == 0)
    return errorf(Errc::Corrupt, "tar stream truncated at offset {} ({} bytes of data missing)",
                  offset_, data_left_);
  offset_ += n;
  data_left_ -= n;
  return n;
}

Status TarReader::drain_trailer(uint64_t end_offset) {
  uint8_t buf[65536];
  uint64_t trailer = 0;
  for (;;) {
    // One byte more than allowed tells a longer trailer from the limit.
    size_t want = static_cast<size_t>(std::min<uint64_t>(sizeof buf, kMaxTrailer + 1 - trailer));
    CFS_TRY_ASSIGN(size_t n, in_.read({buf, want}));
    if (n == 0) return {};
    trailer += n;
    if (trailer > kMaxTrailer)
      return errorf(Errc::TooBig,
                    "tar: more than {} bytes after the end of the archive at offset {} (tar "
                    "writers pad to one record at most)",
                    kMaxTrailer, end_offset);
    offset_ += n;
    CFS_TRY(emit({buf, n}));
  }
}

Result<std::optional<TarEntry>> TarReader::next() {
  if (ended_) return std::optional<TarEntry>();
  CFS_TRY(finish_entry());

  uint64_t start = offset_;
  std::map<std::string, std::string> pax;
  std::optional<std::string> long_name, long_link;
  bool pending = false;
  uint8_t h[kBlock];
  auto fail = [&](const Error& e) {
    return tl::unexpected(
        Error(e.code(), fmt::format("tar header at offset {}: {}", start, e.message())));
  };

  for (;;) {
    uint64_t block_off = offset_;
    auto got = read_block(h, !pending);
    if (!got) return fail(got.error());
    if (!*got) {  // clean end without an end-of-archive marker
      ended_ = true;
      return std::optional<TarEntry>();
    }
    if (all_zero(h, kBlock)) {
      if (pending)
        return errorf(Errc::Corrupt,
                      "tar header at offset {}: end-of-archive after an extension header", start);
      uint8_t h2[kBlock];
      auto got2 = read_block(h2, true);
      if (!got2) return fail(got2.error());
      if (*got2 && !all_zero(h2, kBlock))
        return errorf(Errc::Corrupt, "tar: a lone zero block at offset {} followed by data",
                      block_off);
      if (*got2) CFS_TRY(drain_trailer(block_off));
      ended_ = true;
      return std::optional<TarEntry>();
    }
    if (auto st = check_checksum(h); !st) return fail(st.error());
    std::string_view magic = field(h, kMagic), version = field(h, kVersion);
    bool posix = magic == std::string_view("ustar\0", 6) && version == "00";
    bool gnu = magic == "ustar " && version == std::string_view(" \0", 2);
    bool v7 = all_zero(h + kMagic.off, kMagic.len + kVersion.len);
    if (!posix && !gnu && !v7)
      return errorf(Errc::Corrupt, "tar header at offset {}: unknown format magic", block_off);
    char tf = static_cast<char>(h[kTypeflag]);
    auto size_r = parse_numeric(h, kSize, "size");
    if (!size_r) return fail(size_r.error());
    if (*size_r < 0)
      return errorf(Errc::Corrupt, "tar header at offset {}: negative size", block_off);
    uint64_t size = static_cast<uint64_t>(*size_r);

    if (tf == 'x' || tf == 'g' || tf == 'L' || tf == 'K') {
      uint64_t limit = (tf == 'x' || tf == 'g') ? kMaxPaxSize : kMaxLongName;
      if (size > limit)
        return errorf(Errc::TooBig,
                      "tar header at offset {}: '{}' extension of {} bytes (limit {})", block_off,
                      tf, size, limit);
      // All of them together too: the headers before one entry are held in
      // memory (and inline in a split stream) until the entry is read.
      uint64_t padded = size + (kBlock - size % kBlock) % kBlock;
      if (block_off + kBlock + padded - start > kMaxExtensionBytes)
        return errorf(Errc::TooBig,
                      "tar header at offset {}: extension headers of more than {} bytes before "
                      "one entry (the last at offset {})",
                      start, kMaxExtensionBytes, block_off);
      std::string data(size, '\0');
      auto bytes = std::span(reinterpret_cast<uint8_t*>(data.data()), data.size());
      if (auto st = read_exact(bytes); !st) return fail(st.error());
      CFS_TRY(emit(bytes));
      uint64_t pad = (kBlock - size % kBlock) % kBlock;
      uint8_t padbuf[kBlock];
      if (auto st = read_exact({padbuf, pad}); !st) return fail(st.error());
      CFS_TRY(emit({padbuf, pad}));
      if (tf == 'x') {
        if (auto st = parse_pax(data, &pax); !st) return fail(st.error());
        pending = true;
      } else if (tf == 'g') {
        // Validated, then ignored (as runtimes do).
        if (auto st = parse_pax(data, nullptr); !st) return fail(st.error());
      } else {
        while (!data.empty() && data.back() == '\0') data.pop_back();
        (tf == 'L' ? long_name : long_link) = std::move(data);
        pending = true;
      }
      continue;
    }

    TarEntry e;
    e.offset = start;
    // The name first, so every later error can name the entry.
    std::string raw_path;
    if (auto it = pax.find("path"); it != pax.end())
      raw_path = it->second;
    else if (long_name)
      raw_path = *long_name;
    else {
      raw_path = cstr_field(h, kName);
      std::string prefix = posix ? cstr_field(h, kPrefix) : std::string();
      if (!prefix.empty()) raw_path = prefix + "/" + raw_path;
    }
    auto bad = [&](Errc c, std::string msg) {
      return tl::unexpected(
          Error(c, fmt::format("tar entry '{}' at offset {}: {}", raw_path, start, msg)));
    };
    auto wrap = [&](const Error& err) { return bad(err.code(), err.message()); };

    switch (tf) {
      case '\0': tf = !raw_path.empty() && raw_path.back() == '/' ? '5' : '0'; break;
      case '7': tf = '0'; break;
      case '0':
      case '1':
      case '2':
      case '3':
      case '4':
      case '5':
      case '6': break;
      case 'S': return bad(Errc::Unsupported, "sparse files are not supported");
      case 'M': return bad(Errc::Unsupported, "multi-volume archives are not supported");
      case 'V': return bad(Errc::Unsupported, "volume labels are not supported");
      case 'D': return bad(Errc::Unsupported, "GNU dump directories are not supported");
      default:
        return bad(Errc::Unsupported,
                   fmt::format("unsupported entry type '{}'",
                               std::isprint(static_cast<unsigned char>(tf))
                                   ? std::string(1, tf)
                                   : fmt::format("\\x{:02x}", static_cast<uint8_t>(tf))));
    }
    e.type = static_cast<TarType>(tf);
    for (auto& [k, v] : pax)
      if (k.starts_with("GNU.sparse."))
        return bad(Errc::Unsupported, "sparse files (PAX GNU.sparse) are not supported");

    auto p = normalize_tar_path(raw_path);
    if (!p) return wrap(p.error());
    e.path = std::move(*p);
    bool trailing_slash = raw_path.size() > 1 && raw_path.back() == '/';
    if (trailing_slash && e.type != TarType::Directory)
      return bad(Errc::Corrupt, "a non-directory with a trailing '/'");
    if (e.path.empty() && e.type != TarType::Directory)
      return bad(Errc::Corrupt, "the root entry is not a directory");

    auto mode = parse_numeric(h, kMode, "mode");
    if (!mode) return wrap(mode.error());
    if (*mode < 0 || *mode > 07777777) return bad(Errc::Corrupt, "mode out of range");
    e.mode = static_cast<uint32_t>(*mode) & 07777;

    auto id_field = [&](Field f, const char* key, uint32_t& out) -> Status {
      if (auto it = pax.find(key); it != pax.end()) {
        CFS_TRY_ASSIGN(uint64_t v, parse_decimal(it->second, key, UINT32_MAX));
        out = static_cast<uint32_t>(v);
        return {};
      }
      CFS_TRY_ASSIGN(int64_t v, parse_numeric(h, f, key));
      if (v < 0 || v > int64_t{UINT32_MAX})
        return errorf(Errc::Corrupt, "{} {} out of range", key, v);
      out = static_cast<uint32_t>(v);
      return {};
    };
    if (auto st = id_field(kUid, "uid", e.uid); !st) return wrap(st.error());
    if (auto st = id_field(kGid, "gid", e.gid); !st) return wrap(st.error());

    if (auto it = pax.find("size"); it != pax.end()) {
      auto v = parse_decimal(it->second, "size", INT64_MAX);
      if (!v) return wrap(v.error());
      size = *v;
    }
    if (auto it = pax.find("mtime"); it != pax.end()) {
      if (auto st = parse_pax_time(it->second, e.mtime_sec, e.mtime_nsec); !st)
        return wrap(st.error());
    } else {
      auto v = parse_numeric(h, kMtime, "mtime");
      if (!v) return wrap(v.error());
      e.mtime_sec = *v;
    }
    auto un = pax.find("uname");
    e.uname = un != pax.end() ? un->second : cstr_field(h, kUname);
    auto gn = pax.find("gname");
    e.gname = gn != pax.end() ? gn->second : cstr_field(h, kGname);

    if (auto it = pax.find("linkpath"); it != pax.end())
      e.link = it->second;
    else if (long_link)
      e.link = *long_link;
    else
      e.link = cstr_field(h, kLinkname);

    if (e.type == TarType::Regular) {
      if (size > kMaxTarFileSize)
        return bad(Errc::TooBig,
                   fmt::format("file size {} is absurd (limit {})", size, kMaxTarFileSize));
    } else if (size != 0) {
      return bad(Errc::Corrupt, fmt::format("a non-regular entry with {} bytes of data", size));
    }
    e.size = size;

    if (e.type == TarType::Hardlink) {
      if (e.link.empty()) return bad(Errc::Corrupt, "hardlink without a target");
      auto t = normalize_tar_path(e.link);
      if (!t) return bad(t.error().code(), "hardlink target: " + t.error().message());
      if (t->empty()) return bad(Errc::Corrupt, "hardlink to the root directory");
      e.link = std::move(*t);
    } else if (e.type == TarType::Symlink) {
      if (e.link.empty()) return bad(Errc::Corrupt, "symlink without a target");
      if (e.link.size() >= kPathMax)
        return bad(Errc::TooBig, fmt::format("symlink target of {} bytes", e.link.size()));
      if (e.link.find('\0') != std::string::npos)
        return bad(Errc::Corrupt, "symlink target contains a NUL byte");
    } else {
      e.link.clear();
    }

    if (e.type == TarType::Char || e.type == TarType::Block) {
      auto ma = parse_numeric(h, kDevmajor, "devmajor");
      if (!ma) return wrap(ma.error());
      auto mi = parse_numeric(h, kDevminor, "devminor");
      if (!mi) return wrap(mi.error());
      // EROFS stores rdev in 32 bits: 12 bits of major, 20 of minor.
      if (*ma < 0 || *ma > 0xfff || *mi < 0 || *mi > 0xfffff)
        return bad(Errc::Corrupt, fmt::format("device number {}:{} out of range", *ma, *mi));
      e.dev_major = static_cast<uint32_t>(*ma);
      e.dev_minor = static_cast<uint32_t>(*mi);
    }

    // Extended attributes: SCHILY.xattr.NAME=VALUE (GNU tar, Go, tar-core)
    // and LIBARCHIVE.xattr.%-ENCODED-NAME=BASE64 (bsdtar); SCHILY wins.
    std::map<std::string, std::string> xattrs;
    for (auto& [k, v] : pax) {
      if (k.starts_with("LIBARCHIVE.xattr.")) {
        auto name = percent_decode(std::string_view(k).substr(17));
        if (!name) return wrap(name.error());
        auto value = base64_decode(v);
        if (!value) return wrap(Error(Errc::Corrupt, "bad base64 in a LIBARCHIVE.xattr record"));
        xattrs.emplace(std::move(*name), std::move(*value));
      }
    }
    for (auto& [k, v] : pax)
      if (k.starts_with("SCHILY.xattr.")) xattrs[k.substr(13)] = v;
    for (auto& [k, v] : xattrs) {
      if (k.empty() || k.size() > kMaxXattrName)
        return bad(Errc::Corrupt, fmt::format("xattr name of {} bytes", k.size()));
      if (v.size() > kMaxXattrValue)
        return bad(Errc::TooBig, fmt::format("xattr '{}' value of {} bytes", k, v.size()));
      e.xattrs.push_back({k, v});
    }

    data_left_ = e.type == TarType::Regular ? size : 0;
    pad_left_ = (kBlock - data_left_ % kBlock) % kBlock;
    return std::optional<TarEntry>(std::move(e));
  }
}

}  // namespace cfs::oci
