#include "common/tokenizer/regex_splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/tokenizer/unicode.h"

namespace dspark::tokenizer {
namespace {

constexpr const char* kStarcoderWords =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
constexpr const char* kCjkRun = "[\\x{4E00}-\\x{9FA5}\\x{0800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+";

std::vector<SplitStep> Isolated(std::initializer_list<const char*> patterns) {
  std::vector<SplitStep> steps;
  for (const char* p : patterns) steps.push_back({p, SplitBehavior::kIsolated, false});
  return steps;
}

// Per-thread match data, shared by every compiled pattern: one ovector pair
// is all FindAll needs.
struct MatchData {
  pcre2_match_data* md = pcre2_match_data_create(1, nullptr);
  ~MatchData() { pcre2_match_data_free(md); }
};

pcre2_match_data* ThreadMatchData() {
  thread_local MatchData data;
  return data.md;
}

std::string PcreError(int code) {
  PCRE2_UCHAR buf[256];
  pcre2_get_error_message(code, buf, sizeof(buf));
  return reinterpret_cast<const char*>(buf);
}

struct Span {
  size_t begin, end;
  bool is_match;
};

// Hugging Face's SplitDelimiterBehavior over the spans of one piece.
void ApplyBehavior(SplitBehavior behavior, std::string_view piece, const std::vector<Span>& spans,
                   std::vector<std::string_view>* out) {
  auto emit = [&](size_t b, size_t e) { out->push_back(piece.substr(b, e - b)); };
  const size_t n = spans.size();
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Span& s : spans) emit(s.begin, s.end);
      break;
    case SplitBehavior::kRemoved:
      for (const Span& s : spans) {
        if (!s.is_match) emit(s.begin, s.end);
      }
      break;
    case SplitBehavior::kMergedWithPrevious:
      // A match joins the piece before it, unless that piece is a match too.
      for (size_t i = 0; i < n; ++i) {
        if (spans[i].is_match && i > 0 && !spans[i - 1].is_match) {
          out->back() = piece.substr(spans[i - 1].begin, spans[i].end - spans[i - 1].begin);
        } else {
          emit(spans[i].begin, spans[i].end);
        }
      }
      break;
    case SplitBehavior::kMergedWithNext:
      // A match joins the piece after it, unless that piece is a match too.
      for (size_t i = 0; i < n; ++i) {
        if (spans[i].is_match && i + 1 < n && !spans[i + 1].is_match) {
          emit(spans[i].begin, spans[i + 1].end);
          ++i;
        } else {
          emit(spans[i].begin, spans[i].end);
        }
      }
      break;
    case SplitBehavior::kContiguous:
      // Runs of spans of the same kind become one piece.
      for (size_t i = 0; i < n; ++i) {
        if (i > 0 && spans[i].is_match == spans[i - 1].is_match) {
          out->back() = piece.substr(out->back().data() - piece.data(),
                                     spans[i].end - (out->back().data() - piece.data()));
        } else {
          emit(spans[i].begin, spans[i].end);
        }
      }
      break;
  }
}

}  // namespace

absl::StatusOr<std::vector<SplitStep>> GgufPreTokenizerSteps(const std::string& pre) {
  if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" ||
      pre == "dbrx" || pre == "smaug-bpe" || pre == "chatglm-bpe") {
    return Isolated({kLlama3Pattern});
  }
  if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "stablelm2" || pre == "hunyuan" ||
      pre == "megrez") {
    return Isolated({kQwen2Pattern});
  }
  if (pre == "gpt2" || pre == "gpt-2" || pre == "phi-2" || pre == "mpt" || pre == "olmo" ||
      pre == "jais" || pre == "roberta-bpe" || pre == "jina-es" || pre == "jina-de" ||
      pre == "jina-v1-en" || pre == "jina-v2-es" || pre == "jina-v2-de" || pre == "jina-v2-code" ||
      pre == "trillion") {
    return Isolated({kGpt2Pattern});
  }
  if (pre == "smollm" || pre == "starcoder" || pre == "refact" || pre == "command-r" ||
      pre == "codeshell" || pre == "exaone" || pre == "minerva-7b") {
    return Isolated({"\\p{N}", kStarcoderWords});
  }
  if (pre == "deepseek-coder") {
    return Isolated({"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kCjkRun, "\\p{N}"});
  }
  if (pre == "deepseek-llm") {
    // Cased letters as listed by llama.cpp (from the model's tokenizer.json),
    // written as escapes: several of them are NFC-unstable singletons.
    return Isolated({"[\r\n]",
                     "\\s?["
                     "\\x{41}-\\x{5A}\\x{61}-\\x{7A}\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}"
                     "\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}"
                     "\\x{370}-\\x{373}\\x{376}-\\x{377}\\x{37B}-\\x{37D}\\x{37F}\\x{386}"
                     "\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-\\x{481}"
                     "\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
                     "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}"
                     "\\x{1D6B}-\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}"
                     "\\x{1F20}-\\x{1F45}\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}"
                     "\\x{1F5D}\\x{1F5F}-\\x{1F7D}\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}"
                     "\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}"
                     "\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-\\x{1FFC}\\x{2102}\\x{2107}"
                     "\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}\\x{2126}\\x{2128}"
                     "\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
                     "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}-\\x{2184}\\x{2C00}-\\x{2C7B}"
                     "\\x{2C7E}-\\x{2CE4}\\x{2CEB}-\\x{2CEE}\\x{2CF2}-\\x{2CF3}\\x{A640}-\\x{A66D}"
                     "\\x{A680}-\\x{A69B}\\x{A722}-\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}"
                     "\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}"
                     "\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}-\\x{104D3}"
                     "\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}"
                     "\\x{118A0}-\\x{118DF}\\x{1E900}-\\x{1E943}"
                     "]+",
                     "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}"
                     "\\x{3000}-\\x{3002}]+",
                     "\\s+$", kCjkRun, "\\p{N}+"});
  }
  if (pre == "falcon") {
    return Isolated({"[\\p{P}\\$\\+<=>\\^~\\|`]+", kStarcoderWords, "[0-9][0-9][0-9]"});
  }
  if (pre == "default") {
    return Isolated({"[\\p{P}\\$\\+<=>\\^~\\|]+", kStarcoderWords, "\\p{N}+", "[0-9][0-9][0-9]"});
  }
  return absl::NotFoundError(absl::StrCat("unsupported tokenizer.ggml.pre \"", pre, "\""));
}

std::string RegexEscape(std::string_view literal) {
  std::string out;
  for (char c : literal) {
    if (std::string_view("\\^$.|?*+()[]{}-/#").find(c) != std::string_view::npos) {
      out.push_back('\\');
    }
    out.push_back(c);
  }
  return out;
}

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Compiled() { pcre2_code_free(code); }
};

RegexSplitter::RegexSplitter(std::vector<SplitStep> steps) : steps_(std::move(steps)) {}
RegexSplitter::~RegexSplitter() = default;

absl::StatusOr<std::unique_ptr<RegexSplitter>> RegexSplitter::Create(std::vector<SplitStep> steps) {
  std::unique_ptr<RegexSplitter> s(new RegexSplitter(std::move(steps)));
  for (const SplitStep& step : s->steps_) {
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    auto c = std::make_unique<Compiled>();
    // DOLLAR_ENDONLY: `$` means end of subject, as in Rust's regex and JS.
    c->code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(step.pattern.data()), step.pattern.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_offset, nullptr);
    if (c->code == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("bad pre-tokenizer regex \"", step.pattern,
                                                     "\" at offset ", err_offset, ": ",
                                                     PcreError(err)));
    }
    c->jit = pcre2_jit_compile(c->code, PCRE2_JIT_COMPLETE) == 0;
    s->compiled_.push_back(std::move(c));
  }
  return s;
}

absl::Status RegexSplitter::SplitOne(const Compiled& re, const SplitStep& step,
                                     std::string_view piece,
                                     std::vector<std::string_view>* out) const {
  pcre2_match_data* md = ThreadMatchData();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  // Spans in order: gaps (is_match false) and matches. The common case,
  // Isolated without invert, emits them directly.
  const bool direct = step.behavior == SplitBehavior::kIsolated;
  thread_local std::vector<Span> spans;
  spans.clear();
  auto add = [&](size_t begin, size_t end, bool is_match) {
    if (begin == end) return;
    if (direct) {
      out->push_back(piece.substr(begin, end - begin));
    } else {
      spans.push_back({begin, end, is_match != step.invert});
    }
  };
  size_t pos = 0;     // end of the last match
  size_t search = 0;  // where to search next
  while (search <= piece.size()) {
    int rc = re.jit ? pcre2_jit_match(re.code, subject, piece.size(), search, PCRE2_NO_UTF_CHECK,
                                      md, nullptr)
                    : pcre2_match(re.code, subject, piece.size(), search, PCRE2_NO_UTF_CHECK, md,
                                  nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      return absl::ResourceExhaustedError(
          absl::StrCat("pre-tokenizer regex failed: ", PcreError(rc)));
    }
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    size_t mb = ov[0], me = ov[1];
    if (me == mb) {  // empty match: skip one character
      if (mb >= piece.size()) break;
      search = mb + Utf8SeqLen(static_cast<uint8_t>(piece[mb]));
      continue;
    }
    add(pos, mb, false);
    add(mb, me, true);
    pos = search = me;
  }
  add(pos, piece.size(), false);
  if (!direct) ApplyBehavior(step.behavior, piece, spans, out);
  return absl::OkStatus();
}

absl::Status RegexSplitter::Split(std::string_view text,
                                  std::vector<std::string_view>* pieces) const {
  pieces->clear();
  if (text.empty()) return absl::OkStatus();
  pieces->push_back(text);
  std::vector<std::string_view> next;
  for (size_t i = 0; i < steps_.size(); ++i) {
    next.clear();
    for (std::string_view p : *pieces) {
      absl::Status s = SplitOne(*compiled_[i], steps_[i], p, &next);
      if (!s.ok()) return s;
    }
    pieces->swap(next);
  }
  return absl::OkStatus();
}

}  // namespace dspark::tokenizer
