#include "common/tokenizer/chat_template.h"

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace dspark::tokenizer {
namespace {

using ::nlohmann::ordered_json;

constexpr char kRefsPath[] = "/tests/common/tokenizer/testdata/chat_template_refs.json";

ordered_json LoadRefs() {
  std::ifstream in(std::string(DSPARK_SOURCE_DIR) + kRefsPath);
  EXPECT_TRUE(in.good()) << "missing " << kRefsPath << " (tools/make_chat_template_refs.py)";
  std::stringstream ss;
  ss << in.rdbuf();
  return ordered_json::parse(ss.str());
}

absl::StatusOr<std::string> Render(std::string_view tmpl, const ordered_json& context = {},
                                   const RenderLimits& limits = {}) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(tmpl);
  if (!t.ok()) return t.status();
  return t->Render(context.is_null() ? ordered_json::object() : context, limits);
}

std::string RenderOk(std::string_view tmpl, const ordered_json& context = {}) {
  absl::StatusOr<std::string> out = Render(tmpl, context);
  EXPECT_TRUE(out.ok()) << tmpl << ": " << out.status();
  return out.ok() ? *out : "";
}

// Every case of the reference file (rendered by Python jinja2 configured as
// transformers does) must come out byte for byte the same.
TEST(ChatTemplateTest, MatchesJinja2References) {
  const ordered_json refs = LoadRefs();
  ASSERT_TRUE(refs.contains("cases"));
  std::map<std::string, ChatTemplate> parsed;
  for (const auto& [name, source] : refs["templates"].items()) {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(source.get<std::string>());
    ASSERT_TRUE(t.ok()) << name << ": " << t.status();
    parsed.emplace(name, *std::move(t));
  }
  int checked = 0;
  for (const ordered_json& c : refs["cases"]) {
    const std::string name = c["name"].get<std::string>();
    SCOPED_TRACE(name);
    RenderLimits limits;
    if (c.contains("now_unix")) limits.now = absl::FromUnixSeconds(c["now_unix"].get<int64_t>());
    const absl::StatusOr<std::string> out =
        parsed.at(c["template"].get<std::string>()).Render(c["context"], limits);
    if (c.contains("error")) {
      ASSERT_FALSE(out.ok()) << "expected error, got: " << *out;
      EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_NE(out.status().message().find(c["error"].get<std::string>()), std::string::npos)
          << out.status();
    } else {
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
    }
    ++checked;
  }
  EXPECT_GE(checked, 100);
}

TEST(ChatTemplateTest, ApplyChatTemplateChatMl) {
  const std::string tmpl =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
      "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
      "{{ '<|im_start|>assistant\n' }}{% endif %}";
  const ordered_json messages = ordered_json::parse(
      R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])");
  absl::StatusOr<std::string> out = ApplyChatTemplate(tmpl, messages, true, "", "<|im_end|>");
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
            "<|im_start|>assistant\n");
  // tools and documents are defined (None), as transformers passes them.
  EXPECT_EQ(*ApplyChatTemplate("{{ tools is none }}{{ documents is defined }}{{ bos_token }}",
                               messages, false, "<s>", "</s>"),
            "TrueTrue<s>");
}

TEST(ChatTemplateTest, ObjectsKeepTheirKeyOrder) {
  const ordered_json ctx =
      ordered_json::parse(R"({"tool": {"zeta": 1, "alpha": {"b": 2, "a": 3}}})");
  EXPECT_EQ(RenderOk("{{ tool | tojson }}", ctx), R"({"zeta": 1, "alpha": {"b": 2, "a": 3}})");
  // A plain nlohmann::json converts (sorted keys).
  const nlohmann::json sorted = nlohmann::json::parse(R"({"x": {"b": 1, "a": 2}})");
  EXPECT_EQ(RenderOk("{{ x | tojson }}", sorted), R"({"a": 2, "b": 1})");
}

TEST(ChatTemplateTest, SyntaxErrorsNameLineAndConstruct) {
  struct Case {
    const char* tmpl;
    const char* want;
  };
  const Case cases[] = {
      {"{% if x %}never closed", "'if' opened at line 1:1 needs 'endif'"},
      {"a\n{{ x | xyz }}", "line 2:8: unsupported filter 'xyz'"},
      {"{{ x is frobbed }}", "unsupported test 'frobbed'"},
      {"{% include 'other.jinja' %}", "unsupported tag 'include'"},
      {"{% for x in y %}{% endif %}", "unexpected 'endif'"},
      {"{{ 1 + }}", "line 1:8: unexpected '}}'"},
      {"{{ 'unterminated }}", "unterminated string literal"},
      {"{# no end", "missing end of comment tag"},
      {"{{ x ]}}", "unexpected ']'"},
      {"{% break %}", "'break' outside of a loop"},
      {"{{ f(*args) }}", "unsupported construct '*args'"},
      {"{{ x[, 1] }}", "line 1:6: unexpected ',', expected an expression"},  // once looped forever
      {"{{ x[1,,2] }}", "unexpected ','"},
      {"{{ x[-2,:] }}", "slice in a tuple index"},  // once crashed
      {"{{ x[1:2,3] }}", "slice in a tuple index"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(c.tmpl);
    ASSERT_FALSE(t.ok()) << c.tmpl;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find(c.want), std::string::npos)
        << c.tmpl << " -> " << t.status();
  }
}

TEST(ChatTemplateTest, DeepNestingIsASyntaxErrorNotACrash) {
  const std::string parens = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_EQ(ChatTemplate::Parse(parens).status().code(), absl::StatusCode::kInvalidArgument);
  std::string nots = "{{ ";
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_EQ(ChatTemplate::Parse(nots + "1 }}").status().code(), absl::StatusCode::kInvalidArgument);
  // Long flat chains build tall trees too.
  std::string sum = "{{ 1";
  for (int i = 0; i < 100000; ++i) sum += " + 1";
  EXPECT_EQ(ChatTemplate::Parse(sum + " }}").status().code(), absl::StatusCode::kInvalidArgument);
  std::string filters = "{{ 'x'";
  for (int i = 0; i < 100000; ++i) filters += " | upper";
  EXPECT_EQ(ChatTemplate::Parse(filters + " }}").status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if 1 %}";
  EXPECT_EQ(ChatTemplate::Parse(ifs).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, RuntimeErrors) {
  absl::StatusOr<std::string> out = Render("ok\n{{ raise_exception('Roles must alternate') }}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("line 2:4: raise_exception: Roles must alternate"),
            std::string::npos)
      << out.status();

  out = Render("{{ foo.bar }}");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(out.status().message().find("'foo' is undefined"), std::string::npos) << out.status();

  EXPECT_EQ(Render("{{ 'a' + 1 }}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Render("{{ 1 // 0 }}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Render("{{ 1 < 'a' }}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Render("{{ none() }}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Render("{{ 9223372036854775807 + 1 }}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Render("{{ x }}", ordered_json::array()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, LoopsAreBoundedBySteps) {
  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> out =
      Render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  EXPECT_NE(out.status().message().find("max_steps"), std::string::npos);
  EXPECT_EQ(Render("{{ range(10000000000) | length }}").status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(ChatTemplateTest, OutputAndValuesAreBoundedBySize) {
  EXPECT_EQ(Render("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}").status().code(),
            absl::StatusCode::kResourceExhausted);
  // Doubling a string 64 times must stop at the size limit, not at OOM.
  EXPECT_EQ(Render("{% set ns = namespace(s='ab') %}{% for i in range(64) %}"
                   "{% set ns.s = ns.s ~ ns.s %}{% endfor %}")
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Render("{{ 'x' * 100000000000 }}").status().code(),
            absl::StatusCode::kResourceExhausted);
  // A structure that shares itself 2^60 times.
  EXPECT_EQ(Render("{% set ns = namespace(l=[1]) %}{% for i in range(60) %}"
                   "{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l | tojson }}")
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  RenderLimits small;
  small.max_output_bytes = 10;
  EXPECT_EQ(Render("{{ 'hello world' }}", {}, small).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(*Render("{{ 'hello' }}", {}, small), "hello");
}

TEST(ChatTemplateTest, LongStringOperationsStayFast) {
  // Naive substring search would take ~10^11 steps here.
  const absl::Time start = absl::Now();
  RenderLimits limits;
  limits.max_output_bytes = 4 << 20;
  const ordered_json ctx = {{"hay", std::string(1 << 20, 'a')},
                            {"needle", std::string(1 << 19, 'a') + "b"}};
  EXPECT_EQ(*Render("{{ needle in hay }} {{ hay.find(needle) }} {{ hay.count(needle) }} "
                    "{{ hay.split(needle) | length }} {{ hay.rfind(needle) }}",
                    ctx, limits),
            "False -1 0 1 -1");
  // Indexing a long string decodes it: charged, so a loop over it stops.
  EXPECT_EQ(
      Render("{% for i in range(1000000) %}{{ hay[5] }}{% endfor %}", ctx, limits).status().code(),
      absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Render("{% for i in range(1000000) %}{{ hay == hay ~ '' }}{% endfor %}", ctx, limits)
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(ChatTemplateTest, RecursionIsBounded) {
  // Deep recursion through nested blocks and tall expressions in a macro.
  std::string deep = "{% macro f(n) %}";
  for (int i = 0; i < 90; ++i) deep += "{% if true %}";
  deep += "{{ f(n + 1) ~ (n";
  for (int i = 0; i < 200; ++i) deep += " + 1";
  deep += ") }}";
  for (int i = 0; i < 90; ++i) deep += "{% endif %}";
  deep += "{% endmacro %}{{ f(0) }}";
  EXPECT_EQ(Render(deep).status().code(), absl::StatusCode::kResourceExhausted);

  absl::StatusOr<std::string> out =
      Render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_EQ(out.status().code(), absl::StatusCode::kResourceExhausted) << out.status();
  EXPECT_NE(out.status().message().find("max_recursion_depth"), std::string::npos);
  EXPECT_EQ(RenderOk("{% macro f(n) %}{{ n }}{% if n > 0 %}{{ f(n - 1) }}{% endif %}{% endmacro %}"
                     "{{ f(5) }}"),
            "543210");
}

TEST(ChatTemplateTest, CyclicAndDeepDataFailCleanly) {
  // list.append is outside Jinja's immutable sandbox but supported; a list
  // holding itself cannot be printed and must not leak or crash.
  EXPECT_EQ(RenderOk("{% set l = [] %}{% set _ = l.append(1) %}{% set _ = l.append('a') %}{{ l }}"),
            "[1, 'a']");
  EXPECT_EQ(Render("{% set l = [] %}{% set _ = l.append(l) %}{{ l }}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Render("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns }}").status().code(),
            absl::StatusCode::kInvalidArgument);
  // 20k levels of nesting built at run time: printing fails, teardown is flat.
  EXPECT_EQ(Render("{% set ns = namespace(l=[]) %}{% for i in range(20000) %}"
                   "{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  // Deeply nested input JSON is rejected, not recursed into without bound.
  ordered_json deep = 1;
  for (int i = 0; i < 1000; ++i) deep = ordered_json::array({deep});
  EXPECT_EQ(Render("{{ x }}", {{"x", deep}}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChatTemplateTest, StrftimeNowUsesGivenTime) {
  RenderLimits limits;
  limits.now = absl::FromCivil(absl::CivilSecond(2024, 6, 15, 12, 0, 0), absl::LocalTimeZone());
  EXPECT_EQ(*Render("{{ strftime_now('%d %b %Y') }}", {}, limits), "15 Jun 2024");
  EXPECT_FALSE(RenderOk("{{ strftime_now('%Y') }}").empty());
}

TEST(ChatTemplateTest, PythonValueSemantics) {
  EXPECT_EQ(RenderOk("{{ 'héllo wörld'[1:4] }}|{{ 'héllo' | length }}|{{ 'ab🦙'[::-1] }}"),
            "éll|5|🦙ba");
  EXPECT_EQ(RenderOk("{{ x }}|{{ y }}|{{ z }}|{{ n }}",
                     {{"x", 1.0}, {"y", 1e20}, {"z", true}, {"n", nullptr}}),
            "1.0|1e+20|True|None");
  EXPECT_EQ(RenderOk("{{ d.items() | list }}", {{"d", {{"k", "it's"}}}}), "[('k', \"it's\")]");
  EXPECT_EQ(RenderOk("A\r\nB\rC\n"), "A\nB\nC");  // newlines normalised, one trailing dropped
}

TEST(ChatTemplateTest, RenderIsThreadSafe) {
  absl::StatusOr<ChatTemplate> t = ChatTemplate::Parse(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
      "{{ m.role | upper }}:{{ m.content | trim }}|{% endfor %}{{ ns.n }}{{ tools | tojson }}");
  ASSERT_TRUE(t.ok()) << t.status();
  const ordered_json ctx = ordered_json::parse(
      R"({"messages": [{"role": "user", "content": " a "}, {"role": "assistant", "content": "b"}],
          "tools": [{"name": "f"}]})");
  const std::string want = "USER:a|ASSISTANT:b|2[{\"name\": \"f\"}]";
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      for (int k = 0; k < 200; ++k) {
        absl::StatusOr<std::string> out = t->Render(ctx);
        results[i] = out.ok() ? *out : std::string(out.status().message());
        if (results[i] != want) return;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const std::string& r : results) EXPECT_EQ(r, want);
}

}  // namespace
}  // namespace dspark::tokenizer
