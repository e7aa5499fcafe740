// SPDX-License-Identifier: Apache-2.0
// Hand-made tar archives for the OCI tests: every header byte under the
// test's control (hostile fields, extension records, truncation).
#pragma once

#include <cstdio>
#include <cstring>
#include <map>
#include <string>

namespace cfs::test {

class TarBuilder {
 public:
  struct Entry {
    std::string name;
    char type = '0';
    std::string data;  // regular file content (also sets size unless size_override)
    std::string link;
    unsigned mode = 0644;
    unsigned uid = 0, gid = 0;
    long long mtime = 1700000000;
    unsigned devmajor = 0, devminor = 0;
    long long size_override = -1;
    std::map<std::string, std::string> pax;  // emitted as a preceding 'x' header
    bool gnu_longname = false;               // emit the name through an 'L' header
    bool gnu_longlink = false;
  };

  TarBuilder& add(const Entry& e) {
    if (!e.pax.empty()) {
      std::string recs;
      for (auto& [k, v] : e.pax) recs += record(k, v);
      raw_entry("PaxHeaders/x", 'x', recs, "", 0644, 0, 0, 0, 0, 0, -1);
    }
    std::string name = e.name, link = e.link;
    if (e.gnu_longname) {
      raw_entry("././@LongLink", 'L', e.name + '\0', "", 0, 0, 0, 0, 0, 0, -1, true);
      name = e.name.substr(0, 99);
    }
    if (e.gnu_longlink) {
      raw_entry("././@LongLink", 'K', e.link + '\0', "", 0, 0, 0, 0, 0, 0, -1, true);
      link = e.link.substr(0, 99);
    }
    raw_entry(name, e.type, e.data, link, e.mode, e.uid, e.gid, e.mtime, e.devmajor, e.devminor,
              e.size_override, e.gnu_longname || e.gnu_longlink);
    return *this;
  }
  TarBuilder& file(const std::string& name, const std::string& data, unsigned mode = 0644) {
    Entry e;
    e.name = name;
    e.data = data;
    e.mode = mode;
    return add(e);
  }
  TarBuilder& dir(const std::string& name, unsigned mode = 0755) {
    Entry e;
    e.name = name;
    e.type = '5';
    e.mode = mode;
    return add(e);
  }
  TarBuilder& symlink(const std::string& name, const std::string& target) {
    Entry e;
    e.name = name;
    e.type = '2';
    e.link = target;
    e.mode = 0777;
    return add(e);
  }
  TarBuilder& hardlink(const std::string& name, const std::string& target) {
    Entry e;
    e.name = name;
    e.type = '1';
    e.link = target;
    return add(e);
  }
  // The two zero blocks.
  std::string finish() const { return out_ + std::string(1024, '\0'); }
  std::string& bytes() { return out_; }

  static std::string record(const std::string& k, const std::string& v) {
    std::string body = " " + k + "=" + v + "\n";
    size_t len = body.size() + 1;
    while (std::to_string(len).size() + body.size() != len) len++;
    return std::to_string(len) + body;
  }

  // A header block with a correct checksum for the given fields.
  static std::string header(const std::string& name, char type, unsigned long long size,
                            const std::string& link, unsigned mode, unsigned uid, unsigned gid,
                            long long mtime, unsigned dmaj, unsigned dmin, bool gnu = false) {
    std::string h(512, '\0');
    std::memcpy(&h[0], name.data(), std::min<size_t>(name.size(), 100));
    oct(h, 100, 8, mode);
    oct(h, 108, 8, uid);
    oct(h, 116, 8, gid);
    oct(h, 124, 12, size);
    oct(h, 136, 12, static_cast<unsigned long long>(mtime));
    h[156] = type;
    std::memcpy(&h[157], link.data(), std::min<size_t>(link.size(), 100));
    if (gnu)
      std::memcpy(&h[257], "ustar  \0", 8);
    else
      std::memcpy(&h[257],
                  "ustar\0"
                  "00",
                  8);
    oct(h, 329, 8, dmaj);
    oct(h, 337, 8, dmin);
    fix_checksum(h);
    return h;
  }
  static void fix_checksum(std::string& h) {
    std::memset(&h[148], ' ', 8);
    unsigned sum = 0;
    for (size_t i = 0; i < 512; i++) sum += static_cast<unsigned char>(h[i]);
    char buf[16];
    std::snprintf(buf, sizeof buf, "%06o", sum);
    std::memcpy(&h[148], buf, 6);
    h[154] = '\0';
    h[155] = ' ';
  }

 private:
  static void oct(std::string& h, size_t off, size_t len, unsigned long long v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%0*llo", static_cast<int>(len - 1), v);
    std::memcpy(&h[off], buf, len - 1);
  }
  void raw_entry(const std::string& name, char type, const std::string& data,
                 const std::string& link, unsigned mode, unsigned uid, unsigned gid,
                 long long mtime, unsigned dmaj, unsigned dmin, long long size_override,
                 bool gnu = false) {
    unsigned long long size = size_override >= 0 ? size_override : data.size();
    out_ += header(name, type, size, link, mode, uid, gid, mtime, dmaj, dmin, gnu);
    out_ += data;
    out_ += std::string((512 - data.size() % 512) % 512, '\0');
  }
  std::string out_;
};

}  // namespace cfs::test
