#include "common/engine/model_store/catalogue.h"

#include <string>

#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace dspark {
namespace {

constexpr char kValid[] = R"({
  "default": "two",
  "models": [
    {"name": "one", "architecture": "llama", "sha256": "$SHA", "size": 3,
     "packages": [{"name": "pkg-one", "version": "1.0", "member": "pkg_one/a.gguf"}]},
    {"name": "two", "architecture": "qwen2", "sha256": "$SHA",
     "description": "two parts",
     "packages": [{"name": "p1", "version": "2.0", "member": "p1/data/part01.bin"},
                  {"name": "p2", "version": "2.0", "member": "p2/data/part02.bin"}]}
  ]
})";

std::string Json(
    absl::string_view tmpl,
    std::initializer_list<std::pair<absl::string_view, absl::string_view>> extra = {}) {
  std::string s = absl::StrReplaceAll(tmpl, {{"$SHA", std::string(64, 'a')}});
  return absl::StrReplaceAll(s, extra);
}

TEST(CatalogueTest, ParsesEntriesInOrder) {
  auto cat = ParseCatalogue(Json(kValid), "test.json");
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_EQ(cat->default_model, "two");
  ASSERT_EQ(cat->entries.size(), 2u);
  const CatalogueEntry* two = cat->Find("two");
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->architecture, "qwen2");
  EXPECT_EQ(two->size, 0u);
  EXPECT_EQ(two->description, "two parts");
  ASSERT_EQ(two->packages.size(), 2u);
  EXPECT_EQ(two->packages[1].name, "p2");
  EXPECT_EQ(two->packages[1].member, "p2/data/part02.bin");
  EXPECT_EQ(cat->Find("one")->size, 3u);
  EXPECT_EQ(cat->Find("three"), nullptr);
  EXPECT_EQ(cat->Names(), "one, two");
}

TEST(CatalogueTest, DefaultIsFirstWhenUnset) {
  auto cat = ParseCatalogue(Json(kValid, {{R"("default": "two",)", ""}}), "t");
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_EQ(cat->default_model, "one");
}

TEST(CatalogueTest, RejectsBadInput) {
  const std::pair<absl::string_view, absl::string_view> kBad[] = {
      {R"("default": "two")", R"("default": "nine")"},             // unknown default
      {R"("name": "one")", R"("name": "two")"},                    // duplicate
      {R"("name": "one")", R"("name": "../one")"},                 // unsafe file name
      {R"("name": "one")", R"("name": "One")"},                    // upper case
      {R"("size": 3)", R"("size": -3)"},                           // negative size
      {R"("version": "1.0")", R"("version": "1.0 --index-url")"},  // pip injection
      {R"("name": "pkg-one")", R"("name": "--pre")"},
      {R"("member": "pkg_one/a.gguf")", R"("member": "/etc/passwd")"},
      {R"("member": "pkg_one/a.gguf")", R"("member": "a/../../b")"},
      {R"("architecture": "llama", )", ""},  // missing field
  };
  for (const auto& [from, to] : kBad) {
    EXPECT_EQ(ParseCatalogue(Json(kValid, {{from, to}}), "t").status().code(),
              absl::StatusCode::kInvalidArgument)
        << from << " -> " << to;
  }
  std::string bad_sha = absl::StrReplaceAll(kValid, {{"$SHA", "abc"}});
  EXPECT_FALSE(ParseCatalogue(bad_sha, "t").ok());
  EXPECT_FALSE(ParseCatalogue("{not json", "t").ok());
  EXPECT_FALSE(ParseCatalogue("[]", "t").ok());
  EXPECT_FALSE(ParseCatalogue(R"({"models": []})", "t").ok());
}

TEST(CatalogueTest, UpperCaseHashIsNormalised) {
  std::string text = absl::StrReplaceAll(kValid, {{"$SHA", std::string(64, 'A')}});
  auto cat = ParseCatalogue(text, "t");
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_EQ(cat->entries[0].sha256, std::string(64, 'a'));
}

// The committed catalogue parses and holds the three documented models.
TEST(CatalogueTest, RepositoryCatalogue) {
  auto cat = LoadCatalogue(std::string(DSPARK_SOURCE_DIR) + "/models/catalogue.json");
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_EQ(cat->default_model, "smollm2-135m-instruct");
  ASSERT_NE(cat->Find("qwen2.5-coder-0.5b-instruct"), nullptr);
  EXPECT_EQ(cat->Find("qwen2.5-coder-0.5b-instruct")->packages.size(), 6u);
  ASSERT_NE(cat->Find("gemma-3-270m"), nullptr);
  EXPECT_EQ(cat->Find("gemma-3-270m")->architecture, "gemma3");
  EXPECT_EQ(cat->Find("gemma-3-270m")->packages.size(), 4u);
}

TEST(CatalogueTest, DefaultPathFindsTheRepositoryCatalogue) {
  unsetenv("DSPARK_CATALOGUE");
  auto path = DefaultCataloguePath();
  ASSERT_TRUE(path.ok()) << path.status();
  auto cat = LoadCatalogue();
  ASSERT_TRUE(cat.ok()) << cat.status();
  EXPECT_NE(FindRepoRoot(), "");

  setenv("DSPARK_CATALOGUE", "/nonexistent/catalogue.json", 1);
  EXPECT_EQ(LoadCatalogue().status().code(), absl::StatusCode::kNotFound);
  unsetenv("DSPARK_CATALOGUE");
}

}  // namespace
}  // namespace dspark
