#include "node/metrics/metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "node/metrics/metrics_catalog.h"

namespace zm::metrics {
namespace {

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/zm_metrics_testXXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  const Sample* FindSample(const StatsFile& f, const std::string& name,
                           const std::string& labels) {
    for (const Sample& s : f.samples) {
      if (s.name == name && s.labels == labels) return &s;
    }
    return nullptr;
  }

  std::string dir_;
};

TEST(RenderLabelsTest, EscapesValues) {
  EXPECT_EQ(RenderLabels({}), "");
  EXPECT_EQ(RenderLabels({{"channel", "smtp"}, {"result", "ok"}}),
            "channel=\"smtp\",result=\"ok\"");
  EXPECT_EQ(RenderLabels({{"r", "a\"b\\c\nd"}}), "r=\"a\\\"b\\\\c\\nd\"");
}

TEST_F(MetricsTest, WriterAndReaderAgree) {
  auto reg = Registry::Open(dir_ + "/metrics", "smtpserver");
  ASSERT_TRUE(reg->exported());
  Counter c = reg->GetCounter(kSmtpConnections, {{"listener", "smtp"}});
  Gauge g = reg->GetGauge(kQueueMessages);
  c.Inc();
  c.Inc(4);
  g.Set(17);
  g.Add(-2);
  // The same series twice is the same slot.
  reg->GetCounter(kSmtpConnections, {{"listener", "smtp"}}).Inc();

  auto f = ReadStatsFile(dir_ + "/metrics/smtpserver.stats");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->program, "smtpserver");
  EXPECT_EQ(f->pid, getpid());
  ASSERT_EQ(f->samples.size(), 2u);
  const Sample* s =
      FindSample(*f, std::string(kSmtpConnections), "listener=\"smtp\"");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->kind, Kind::kCounter);
  EXPECT_EQ(s->value, 6);
  s = FindSample(*f, std::string(kQueueMessages), "");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->kind, Kind::kGauge);
  EXPECT_EQ(s->value, 15);
}

TEST_F(MetricsTest, ReopenStartsFromZero) {
  {
    auto reg = Registry::Open(dir_, "router");
    reg->GetCounter(kRouterMessages).Inc(3);
  }
  auto reg = Registry::Open(dir_, "router");
  reg->GetCounter(kRouterMessages);
  auto f = ReadStatsFile(dir_ + "/router.stats");
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->samples.size(), 1u);
  EXPECT_EQ(f->samples[0].value, 0);
}

TEST_F(MetricsTest, FullFileKeepsCountingPrivately) {
  auto reg = Registry::Open(dir_, "tiny", /*capacity=*/2);
  reg->GetCounter("a_total").Inc();
  reg->GetCounter("b_total").Inc();
  Counter c = reg->GetCounter("c_total");
  c.Inc(5);
  EXPECT_EQ(c.value(), 5);  // counted, but not exported
  auto f = ReadStatsFile(dir_ + "/tiny.stats");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->samples.size(), 2u);
}

TEST_F(MetricsTest, TooLongNameIsNotExported) {
  auto reg = Registry::Open(dir_, "p");
  Counter c = reg->GetCounter(std::string(kNameMax + 1, 'x'));
  c.Inc();
  EXPECT_EQ(c.value(), 1);
  auto f = ReadStatsFile(dir_ + "/p.stats");
  ASSERT_TRUE(f.ok());
  EXPECT_TRUE(f->samples.empty());
}

TEST_F(MetricsTest, ThreadsCountWithoutLosingIncrements) {
  auto reg = Registry::Open(dir_, "threads");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&reg] {
      for (int i = 0; i < 10000; ++i) {
        reg->GetCounter("x_total", {{"k", "v"}}).Inc();
      }
    });
  }
  for (auto& t : threads) t.join();
  auto f = ReadStatsFile(dir_ + "/threads.stats");
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->samples.size(), 1u);
  EXPECT_EQ(f->samples[0].value, 40000);
}

TEST_F(MetricsTest, ForkedChildCountsIntoTheSameFile) {
  auto reg = Registry::Open(dir_, "forked");
  Counter c = reg->GetCounter("y_total");
  c.Inc();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    c.Inc(10);
    // A series the child registers lands in the shared file too.
    reg->GetCounter("z_total").Inc(2);
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  auto f = ReadStatsFile(dir_ + "/forked.stats");
  ASSERT_TRUE(f.ok());
  const Sample* y = FindSample(*f, "y_total", "");
  const Sample* z = FindSample(*f, "z_total", "");
  ASSERT_NE(y, nullptr);
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(y->value, 11);
  EXPECT_EQ(z->value, 2);
}

TEST_F(MetricsTest, ReaderRefusesOtherFilesAndDirSkipsThem) {
  auto reg = Registry::Open(dir_, "good");
  reg->GetCounter("g_total").Inc();
  {
    FILE* f = fopen((dir_ + "/bad.stats").c_str(), "w");
    ASSERT_NE(f, nullptr);
    fputs(
        "this is not a stats file at all, but long enough to have a header"
        " of sixty-four bytes",
        f);
    fclose(f);
  }
  EXPECT_FALSE(ReadStatsFile(dir_ + "/bad.stats").ok());
  EXPECT_FALSE(ReadStatsFile(dir_ + "/missing.stats").ok());
  auto all = ReadStatsDir(dir_);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].program, "good");
  EXPECT_TRUE(ReadStatsDir(dir_ + "/nonexistent").empty());
}

TEST_F(MetricsTest, UnwritableDirFallsBackToMemory) {
  auto reg = Registry::Open("/proc/zm-no-such-dir", "p");
  EXPECT_FALSE(reg->exported());
  Counter c = reg->GetCounter("a_total");
  c.Inc(2);
  EXPECT_EQ(c.value(), 2);
}

TEST(CatalogTest, NamesFollowConventions) {
  for (const MetricInfo& m : Catalog()) {
    EXPECT_TRUE(m.name.starts_with("zmnode_")) << m.name;
    EXPECT_LE(m.name.size(), kNameMax) << m.name;
    EXPECT_EQ(m.type == MetricType::kCounter, m.name.ends_with("_total"))
        << m.name;
    EXPECT_EQ(FindMetric(m.name), &m);
  }
  EXPECT_EQ(FindMetric("nope"), nullptr);
}

}  // namespace
}  // namespace zm::metrics
