// SPDX-License-Identifier: Apache-2.0
#include "composefs-cpp/pe/builder.h"

#include <algorithm>
#include <cstring>

namespace cfs::pe {

namespace {

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

template <class T>
T load(std::span<const uint8_t> b, size_t off) {
  T v;
  std::memcpy(&v, b.data() + off, sizeof(T));
  return v;
}
template <class T>
void store(std::vector<uint8_t>& b, size_t off, const T& v) {
  std::memcpy(b.data() + off, &v, sizeof(T));
}

struct Sec {
  SectionHeader hdr{};
  std::vector<uint8_t> raw;  // SizeOfRawData bytes
  uint64_t old_pointer = 0;
  bool from_stub = false;
};

std::string name_of(const SectionHeader& h) {
  size_t n = 0;
  while (n < 8 && h.Name[n]) n++;
  return std::string(reinterpret_cast<const char*>(h.Name), n);
}

uint32_t mem_size(const SectionHeader& h) {
  return h.VirtualSize ? uint32_t(h.VirtualSize) : uint32_t(h.SizeOfRawData);
}

}  // namespace

Result<std::vector<uint8_t>> add_sections(std::span<const uint8_t> stub,
                                          const std::vector<NewSection>& sections,
                                          BuildNotes* notes) {
  BuildNotes local;
  if (!notes) notes = &local;
  CFS_TRY_ASSIGN(PeFile in, PeFile::parse(stub));
  if (!in.pe32_plus())
    return make_error(Errc::Unsupported,
                      "the stub is a PE32 image; only PE32+ stubs are supported");
  if (in.data_directory(kDirSecurity).Size)
    return errorf(Errc::InvalidArgument,
                  "the stub is already signed (a certificate table of {} bytes): start from an "
                  "unsigned stub",
                  uint32_t(in.data_directory(kDirSecurity).Size));
  for (const auto& s : sections) {
    if (s.name.empty() || s.name.size() > 8 || s.name.find('\0') != std::string::npos)
      return errorf(Errc::InvalidArgument,
                    "section name '{}' must be 1 to 8 bytes (PE executables have no long names)",
                    s.name);
    if (s.data.empty()) return errorf(Errc::InvalidArgument, "section {} is empty", s.name);
    if (s.data.size() > 0x7fffffff)
      return errorf(Errc::TooBig, "section {} has {} bytes, over 2 GiB", s.name, s.data.size());
  }
  const uint64_t fa = in.file_alignment(), sa = in.section_alignment();

  // What follows the stub's sections: a COFF symbol table (cut off, as
  // ukify does), zero padding (dropped) or anything else (refused).
  CoffHeader coff = in.coff();
  uint64_t tail_start = in.sections_end();
  if (coff.PointerToSymbolTable) {
    uint64_t sym = coff.PointerToSymbolTable;
    uint64_t end = sym + uint64_t(coff.NumberOfSymbols) * kCoffSymbolSize;
    if (sym < tail_start || end > stub.size())
      return errorf(Errc::Corrupt,
                    "the stub's COFF symbol table (PointerToSymbolTable 0x{:x}, {} symbols) is not "
                    "after its sections and inside the file",
                    sym, uint32_t(coff.NumberOfSymbols));
    notes->stripped_symbol_table = true;
    coff.PointerToSymbolTable = 0;
    coff.NumberOfSymbols = 0;
    coff.Characteristics = uint16_t(coff.Characteristics | kFileLocalSymsStripped);
    for (uint64_t i = tail_start; i < sym; i++)
      if (stub[i])
        return errorf(Errc::Corrupt, "the stub has unknown data at 0x{:x} before its symbol table",
                      i);
  } else {
    for (uint64_t i = tail_start; i < stub.size(); i++)
      if (stub[i])
        return errorf(Errc::Corrupt,
                      "the stub has {} bytes of unknown data after its last section (at 0x{:x})",
                      stub.size() - tail_start, tail_start);
  }

  // The stub's sections, in header order, each with its file bytes.
  std::vector<Sec> secs;
  for (const auto& s : in.sections()) {
    Sec x;
    x.hdr = load<SectionHeader>(stub, s.header_offset);
    auto raw = stub.subspan(s.pointer_to_raw_data, s.size_of_raw_data);
    x.raw.assign(raw.begin(), raw.end());
    x.raw.resize(align_up(x.raw.size(), fa), 0);
    x.old_pointer = s.pointer_to_raw_data;
    x.from_stub = true;
    secs.push_back(std::move(x));
  }
  auto opt = load<OptionalHeader64>(stub, in.optional_header_offset());
  uint32_t init_data = opt.SizeOfInitializedData;

  auto mem_end = [&] {
    uint64_t end = 0;
    for (const auto& s : secs)
      end = std::max<uint64_t>(end, s.hdr.VirtualAddress + mem_size(s.hdr));
    return end;
  };

  for (const auto& ns : sections) {
    // Readers take the first section of a name: with two in the stub, which
    // one the new data replaced would be ambiguous.
    if (std::count_if(secs.begin(), secs.end(),
                      [&](const Sec& s) { return s.from_stub && name_of(s.hdr) == ns.name; }) > 1)
      return errorf(Errc::Corrupt, "the stub has more than one {} section", ns.name);
    auto it = std::find_if(secs.begin(), secs.end(),
                           [&](const Sec& s) { return name_of(s.hdr) == ns.name; });
    if (it != secs.end()) {
      // In place (ukify), if it fits its file space and, in memory, the
      // space up to the next section.
      uint64_t va = it->hdr.VirtualAddress, next = UINT64_MAX;
      for (const auto& s : secs)
        if (&s != &*it && s.hdr.VirtualAddress >= va && mem_size(s.hdr))
          next = std::min<uint64_t>(next, s.hdr.VirtualAddress);
      if (align_up(ns.data.size(), fa) <= it->raw.size() && va + ns.data.size() <= next) {
        std::fill(it->raw.begin(), it->raw.end(), 0);
        std::copy(ns.data.begin(), ns.data.end(), it->raw.begin());
        it->hdr.VirtualSize = uint32_t(ns.data.size());
        continue;
      }
      if (ns.name == ".sbat") notes->sbat_moved = true;
      init_data -= std::min<uint32_t>(init_data, it->hdr.VirtualSize);
      secs.erase(it);
    }
    Sec x;
    std::memcpy(x.hdr.Name, ns.name.data(), ns.name.size());
    x.hdr.VirtualSize = uint32_t(ns.data.size());
    uint64_t va = align_up(mem_end(), sa);
    if (va + ns.data.size() > 0xffffffffull)
      return errorf(Errc::TooBig, "section {} would end past 4 GiB in memory", ns.name);
    x.hdr.VirtualAddress = uint32_t(va);
    x.hdr.SizeOfRawData = uint32_t(align_up(ns.data.size(), fa));
    // ukify: .linux is code ("old kernels that use the EFI handover protocol
    // are executed inline"), everything else initialised data; read-only.
    x.hdr.Characteristics =
        kScnMemRead | (ns.name == ".linux" ? kScnCntCode : kScnCntInitializedData);
    x.raw = ns.data;
    x.raw.resize(x.hdr.SizeOfRawData, 0);
    init_data += uint32_t(ns.data.size());
    secs.push_back(std::move(x));
  }

  // Headers: the stub's, with room for the new section table, rounded up to
  // FileAlignment; they may grow up to the first section in memory.
  const uint64_t table = in.section_table_offset();
  uint64_t need = table + secs.size() * sizeof(SectionHeader);
  uint64_t soh = align_up(std::max<uint64_t>(in.size_of_headers(), need), fa);
  uint64_t first_va = UINT64_MAX;
  for (const auto& s : secs)
    if (mem_size(s.hdr)) first_va = std::min<uint64_t>(first_va, s.hdr.VirtualAddress);
  if (soh > first_va)
    return errorf(Errc::TooBig,
                  "not enough header space: {} section headers need 0x{:x} bytes of headers, but "
                  "the first section starts at 0x{:x} in memory",
                  secs.size(), need, first_va);
  if (soh != in.size_of_headers()) notes->realigned = true;

  std::vector<uint8_t> out(soh, 0);
  std::copy(stub.begin(), stub.begin() + std::min<uint64_t>(table, stub.size()), out.begin());
  // The stub's sections keep their file order, the new ones follow.
  std::vector<Sec*> order;
  for (auto& s : secs)
    if (s.from_stub) order.push_back(&s);
  std::stable_sort(order.begin(), order.end(),
                   [](const Sec* a, const Sec* b) { return a->old_pointer < b->old_pointer; });
  for (auto& s : secs)
    if (!s.from_stub) order.push_back(&s);
  for (Sec* s : order) {
    if (s->raw.empty()) {
      s->hdr.PointerToRawData = 0;
      s->hdr.SizeOfRawData = 0;
      continue;
    }
    uint64_t ptr = align_up(out.size(), fa);
    if (ptr + s->raw.size() > 0xffffffffull)
      return make_error(Errc::TooBig, "the UKI would be larger than 4 GiB");
    if (s->from_stub && ptr != s->old_pointer) notes->realigned = true;
    out.resize(ptr, 0);
    s->hdr.PointerToRawData = uint32_t(ptr);
    s->hdr.SizeOfRawData = uint32_t(s->raw.size());
    out.insert(out.end(), s->raw.begin(), s->raw.end());
  }
  for (size_t i = 0; i < secs.size(); i++)
    store(out, table + i * sizeof(SectionHeader), secs[i].hdr);

  coff.NumberOfSections = uint16_t(secs.size());
  store(out, in.coff_offset(), coff);
  opt.SizeOfHeaders = uint32_t(soh);
  opt.SizeOfImage = uint32_t(align_up(mem_end(), sa));
  opt.SizeOfInitializedData = init_data;
  opt.CheckSum = 0;
  store(out, in.optional_header_offset(), opt);
  store(out, in.checksum_offset(), le32(pe_checksum(out, in.checksum_offset())));

  // What we wrote must read back.
  auto check = PeFile::parse(out);
  if (!check) return tl::unexpected(std::move(check.error()).context("the built image is invalid"));
  return out;
}

std::string merge_sbat(const std::vector<std::string_view>& inputs,
                       const std::vector<std::string>& extra) {
  std::vector<std::string> lines{std::string(kSbatSelfLine)};
  for (std::string_view in : inputs) {
    in = in.substr(0, in.find('\0'));
    while (!in.empty()) {
      size_t nl = in.find('\n');
      std::string_view line = in.substr(0, nl);
      in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || line.substr(0, 5) == "sbat,") continue;
      lines.emplace_back(line);
    }
  }
  for (const auto& e : extra) lines.push_back(e);
  std::string out;
  for (size_t i = 0; i < lines.size(); i++) out += (i ? "\n" : "") + lines[i];
  out += "\n";
  out.push_back('\0');
  return out;
}

std::vector<uint8_t> join_initrds(const std::vector<std::vector<uint8_t>>& initrds) {
  std::vector<uint8_t> out;
  for (const auto& i : initrds) {
    out.insert(out.end(), i.begin(), i.end());
    out.resize(align_up(out.size(), 4), 0);
  }
  return out;
}

Result<std::vector<NewSection>> uki_sections(const PeFile& stub, const UkiInputs& in) {
  std::vector<NewSection> out;
  auto text = [&](const char* name, const std::optional<std::string>& s) {
    if (s && !s->empty()) out.push_back({name, std::vector<uint8_t>(s->begin(), s->end())});
  };
  auto blob = [&](const char* name, const std::optional<std::vector<uint8_t>>& b) {
    if (b && !b->empty()) out.push_back({name, *b});
  };
  text(".osrel", in.osrel);
  text(".cmdline", in.cmdline);
  blob(".dtb", in.dtb);
  text(".uname", in.uname);
  blob(".splash", in.splash);
  text(".pcrpkey", in.pcrpkey);
  if (!in.initrds.empty()) blob(".initrd", join_initrds(in.initrds));
  blob(".ucode", in.ucode);
  for (const auto& e : in.extra) out.push_back(e);

  std::string sbat;
  if (in.linux) {
    auto kernel = PeFile::parse(*in.linux);
    if (!kernel)
      return tl::unexpected(std::move(kernel.error())
                                .context("the kernel is not a PE image (systemd-stub needs an "
                                         "EFI-stub kernel)"));
    std::vector<std::string_view> inputs;
    for (const PeFile* pe : {&stub, static_cast<const PeFile*>(&*kernel)})
      if (const Section* s = pe->find(".sbat")) {
        auto d = pe->data(*s);
        inputs.emplace_back(reinterpret_cast<const char*>(d.data()), d.size());
      }
    sbat = merge_sbat(
        inputs, in.sbat.empty() ? std::vector<std::string>{std::string(kSbatUkiLine)} : in.sbat);
    out.push_back({".linux", *in.linux});
  } else {
    sbat = merge_sbat(
        {}, in.sbat.empty() ? std::vector<std::string>{std::string(kSbatAddonLine)} : in.sbat);
  }
  out.push_back({".sbat", std::vector<uint8_t>(sbat.begin(), sbat.end())});
  return out;
}

}  // namespace cfs::pe
